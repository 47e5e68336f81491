"""The audio kind through the runner: cached frozen features, every frame predicted, a video without sound."""

from pathlib import Path

import numpy as np
import pytest

from harness.data.affwild2 import Dataset
from harness.data.audio import NoAudioError
from harness.leaderboard import Leaderboard
from harness.models import audio as audio_module
from harness.models.audio import AudioKind
from harness.runner import run_system
from harness.store import Store

FAST_AUDIO = """kind: audio
tasks: [va, expr]
head: gru
trainable_blocks: 2
profiles:
  smoke: {epochs: 1, batch_size: 8, min_speech: 0.2}
"""


@pytest.fixture(scope="module")
def audio_world(synthetic_tiny: Path, tmp_path_factory: pytest.TempPathFactory):
    """One VA audio system trained on the tiny dataset, one validation video pretending to have no sound."""
    base = tmp_path_factory.mktemp("audio")
    systems = base / "systems"
    systems.mkdir()
    (systems / "fast_audio.yaml").write_text(FAST_AUDIO)
    dataset = Dataset(synthetic_tiny)
    silent = dataset.split("va", "validation").tracks[0]
    real_decode = audio_module.decode_audio

    def decode(path, sample_rate=16000):
        if Path(path).stem == silent.video:
            raise NoAudioError(f"{path}: the video has no audio stream; its tracks will fall back to a constant prior")
        return real_decode(path, sample_rate)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(audio_module, "decode_audio", decode)
        store, board = Store(base / "store"), Leaderboard(base / "board.sqlite")
        results = run_system("fast_audio", ["va"], dataset, "smoke", store, board, systems)
    return dataset, store, board, systems, results, silent


def test_every_frame_is_predicted_and_the_silent_video_is_noted(audio_world) -> None:
    dataset, store, board, _, (result,), silent = audio_world
    node = store.node(result.plan.key)
    for split in ("train", "validation", "test"):
        for track in dataset.split("va", split).tracks:
            pred = node.read_track(f"pred-{split}", track.name)
            assert pred.shape == (track.n_rows, 2) and np.isfinite(pred).all()
    fallback = node.read_track("pred-validation", silent.name)
    assert np.all(fallback == fallback[0])  # the train prior, constant
    assert any("no audio stream" in note for note in result.notes)
    (row,) = board.rows(task="va")
    assert any(silent.video in note for note in row.extra["notes"])


def test_rerun_is_all_store_hits(audio_world, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset, store, board, systems, _, _ = audio_world
    monkeypatch.setattr(AudioKind, "fit", lambda *a: pytest.fail("an unchanged re-run must not train"))
    (again,) = run_system("fast_audio", ["va"], dataset, "smoke", store, board, systems)
    assert again.hit and again.notes


def test_each_second_of_audio_is_encoded_at_most_twice(audio_world) -> None:
    dataset, store, _, _, _, silent = audio_world
    stored = store.keys()
    (cache_key,) = [key for key in stored if key.startswith("cache-audio-frozen")]
    cache = store.node(cache_key)
    for split in ("train", "validation"):
        encoded = audio_seconds = 0.0
        for track in dataset.split("va", split).tracks:
            if track.video == silent.video:
                continue
            features = cache.read_track(f"va-{split}", track.name)
            encoded += len(features) * 4.0
            audio_seconds += track.n_rows / dataset.split("va", split).fps(track.name)
        assert encoded / audio_seconds <= 2.0 + 4.0 * len(dataset.split("va", split).tracks) / audio_seconds
