"""The audio kind through the runner: cached frozen features, every frame predicted, a video without sound."""

from pathlib import Path

import numpy as np
import pytest

from harness.data.affwild2 import Dataset
from harness.data.audio import NoAudioError
from harness.errors import SpecError
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
  smoke: {epochs: 1, batch_size: 8, min_speech: 0.2, tiny_corpus_clips: 16, tiny_corpus_epochs: 1}
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
    assert any("tiny encoder fine-tuned on 16 synthetic clips" in note for note in result.notes)
    stored = store.keys()
    assert [key for key in stored if key.startswith("cache-audio-tiny-pdem")]  # fine-tuned once, kept
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


# Bad inputs, at the kind itself: silence, clipping, a track shorter than a window, audio shorter than the labels.


class _Track:
    def __init__(self, name: str, n_rows: int, rng: np.random.Generator, task: str) -> None:
        self.name, self.video, self.n_rows = name, name, n_rows
        arousal = np.clip(np.cumsum(rng.normal(0, 0.05, n_rows)), -1, 1)
        self.labels = np.stack([0.5 * arousal, arousal], axis=1).astype(np.float32)
        if (
            task == "au"
        ):  # 12 action units, on where arousal is high (AU12, AU25) or at random; the first second invalid
            self.labels = (rng.random((n_rows, 12)) < 0.2).astype(np.int8)
            self.labels[:, [6, 10]] = arousal[:, None] > 0
            self.labels[:30] = -1


class _Split:
    """Tracks at 30 fps shaped like ``harness.data.affwild2.Split`` as far as the audio kind looks."""

    def __init__(self, name: str, rows: dict[str, int], task: str) -> None:
        rng = np.random.default_rng(0)
        self.name, self.names = name, tuple(rows)
        self.tracks = {track: _Track(track, n, rng, task) for track, n in rows.items()}

    def track(self, name: str) -> _Track:
        return self.tracks[name]

    def fps(self, name: str) -> float:
        return 30.0

    def video_info(self, name: str):
        return type("Info", (), {"path": Path(f"{name}.mp4")})()


class _Cache:
    def __init__(self) -> None:
        self.arrays: dict = {}

    def missing_tracks(self, group, tracks):
        return [t for t in tracks if (group, t) not in self.arrays]

    def write_track(self, group, track, array, dtype=None):
        self.arrays[group, track] = np.asarray(array, dtype=dtype)

    def read_track(self, group, track, mmap=True):
        return self.arrays[group, track]


def _context(rows: dict[str, int], task: str = "va"):
    """A context of ``task`` whose train and validation splits hold ``rows`` (track → label lines), with in-memory
    caches."""
    from harness.models.context import Context

    splits = {"train": _Split("train", rows, task), "validation": _Split("validation", rows, task)}
    dataset = type("Data", (), {"split": lambda self, task, name: splits[name]})()
    caches: dict = {}
    return Context(dataset, task, {}, cache=lambda name, material: caches.setdefault(name, _Cache())), caches


def _voice(seconds: float, seed: int) -> np.ndarray:
    from harness.data.synthetic.audio import Voice, synthesize_speech

    rng = np.random.default_rng(seed)
    n = round(seconds * 30)
    return synthesize_speech(np.zeros(n), np.zeros(n), np.ones(n, bool), Voice.random(rng), 30.0, 16000, rng)


def test_silence_clipping_short_tracks_and_short_audio_get_finite_predictions_for_every_frame(monkeypatch) -> None:
    from harness.data.audio import AudioTrack

    sounds = {
        "talk": _voice(10.0, 1),
        "silent": np.zeros(16000 * 10, np.float32),
        "clipped": np.clip(20.0 * _voice(10.0, 2), -1.0, 1.0),
        "short": _voice(2.5, 3),  # 2.5 s: less than one 4 s window, padded with silence
        "short_audio": _voice(5.0, 4),  # 5 s of sound under 10 s of labels
    }
    rows = {"talk": 300, "silent": 300, "clipped": 300, "short": 75, "short_audio": 300}
    asked_rates = []

    def decode(path, sample_rate=16000):
        asked_rates.append(sample_rate)
        samples = sounds[Path(path).stem]
        return AudioTrack(Path(path), samples, sample_rate, 44100, 2, float(np.mean(np.abs(samples) >= 0.99)), 0.0)

    monkeypatch.setattr(audio_module, "decode_audio", decode)
    context, caches = _context(rows)
    overrides = {"epochs": 1, "min_speech": 0.0, "tiny_corpus_clips": 0}  # the random tiny encoder: no fine-tuning
    settings = AudioKind.Settings(**{**AudioKind.profiles["smoke"], **overrides})
    kind = AudioKind(settings, "va", seed=0).fit(context)

    assert set(asked_rates) == {16000}  # whatever the stored rate, the kind asks for 16 kHz (decoding resamples)
    features = caches["audio-frozen"].arrays
    assert all(np.isfinite(np.asarray(f, np.float32)).all() for f in features.values())
    assert len(features["va-train", "short"]) == 1  # one window, its tail padded
    assert len(features["va-train", "short_audio"]) == len(features["va-train", "talk"])  # labels decide the windows
    assert caches["audio-vad"].arrays["vad", "silent"].max() < 0.1
    predictions = dict(kind.predict(context, "validation", list(rows)))
    for name, n in rows.items():
        assert predictions[name]["pred"].shape == (n, 2) and np.isfinite(predictions[name]["pred"]).all()


def test_a_saved_pdem_folder_trains_through_the_paper_code_path_offline(tmp_path, monkeypatch) -> None:
    """``encoder: pdem`` loads the folder with ``load_pdem(folder, "paper")``; a tiny PDEM saved there stands in."""
    import torch

    from harness.data.audio import AudioTrack
    from harness.models.pdem import PdemModel, smoke_config

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(7)
    config = smoke_config()
    config.feat_extract_norm = "layer"  # PDEM's conv stack (the smoke encoder uses wav2vec2-base's group norm)
    saved = PdemModel(config).eval()
    saved.save_pretrained(tmp_path / "pdem", safe_serialization=True)
    sound = _voice(6.0, 5)
    monkeypatch.setattr(
        audio_module,
        "decode_audio",
        lambda path, sample_rate=16000: AudioTrack(Path(path), sound, 16000, 16000, 1, 0.0, 0.0),
    )
    context, _ = _context({"a": 180, "b": 180})
    overrides = {"encoder": "pdem", "pdem": str(tmp_path / "pdem"), "epochs": 1, "min_speech": 0.0}
    settings = AudioKind.Settings(**{**AudioKind.profiles["smoke"], **overrides})
    assert AudioKind.key_extra(settings) == {"pdem": str(tmp_path / "pdem")}
    kind = AudioKind(settings, "va", seed=0).fit(context)
    frozen = {k: v for k, v in kind.pdem_.state_dict().items() if not k.startswith("wav2vec2.encoder.layers.")}
    assert all(torch.equal(v, saved.state_dict()[k]) for k, v in frozen.items() if "encoder.layer_norm" not in k)
    (name, out), _ = list(kind.predict(context, "validation", ["a", "b"]))
    assert out["pred"].shape == (180, 2) and np.isfinite(out["pred"]).all()
    settings = AudioKind.Settings(**{**settings.model_dump(), "pdem": str(tmp_path / "missing")})
    with pytest.raises(SpecError, match=r"missing.*does not exist"):
        AudioKind(settings, "va", seed=0).fit(context)


def test_action_units_train_with_weighted_bce_and_predict_probabilities(monkeypatch) -> None:
    from harness.data.audio import AudioTrack

    sounds = {"a": _voice(10.0, 6), "b": _voice(8.0, 7)}
    monkeypatch.setattr(
        audio_module,
        "decode_audio",
        lambda path, sample_rate=16000: AudioTrack(Path(path), sounds[Path(path).stem], 16000, 16000, 1, 0.0, 0.0),
    )
    rows = {"a": 300, "b": 240}
    context, caches = _context(rows, "au")
    overrides = {"epochs": 1, "min_speech": 0.0, "tiny_corpus_clips": 0}
    settings = AudioKind.Settings(**{**AudioKind.profiles["smoke"], **overrides})
    kind = AudioKind(settings, "au", seed=0).fit(context)
    assert kind.rate == 5.0 and kind.model_.output.out_features == 12
    assert ("au-train", "a") in caches["audio-frozen"].arrays
    train = context.split("train")
    labels = np.concatenate([train.track(name).labels[30:] for name in rows])
    assert kind.prior_.shape == (12,) and abs(kind.prior_[6] - labels[:, 6].mean()) < 0.1  # AU frequencies
    predictions = dict(kind.predict(context, "validation", list(rows)))
    for name, n in rows.items():
        pred = predictions[name]["pred"]
        assert pred.shape == (n, 12) and np.isfinite(pred).all() and pred.min() >= 0 and pred.max() <= 1


def test_a_track_with_more_label_lines_in_another_task_gets_voice_activity_of_its_own_length(monkeypatch) -> None:
    """The voice-activity cache is shared by the tasks; where one video's annotation files differ in length between
    challenges, each length gets the values computed for it, whichever task ran first."""
    from harness.data.audio import AudioTrack, speech_probability
    from harness.models.context import Context

    sound = AudioTrack(Path("a.mp4"), _voice(12.0, 8), 16000, 16000, 1, 0.0, 0.0)
    monkeypatch.setattr(audio_module, "decode_audio", lambda path, sample_rate=16000: sound)
    caches: dict = {}
    settings = AudioKind.Settings(**{**AudioKind.profiles["smoke"], "epochs": 1, "min_speech": 0.0})
    settings = settings.model_copy(update={"tiny_corpus_clips": 0})
    for task, n_rows in (("va", 300), ("au", 360), ("va", 300)):
        splits = {name: _Split(name, {"a": n_rows}, task) for name in ("train", "validation")}
        dataset = type("Data", (), {"split": lambda self, task, name, splits=splits: splits[name]})()
        context = Context(dataset, task, {}, cache=lambda name, material: caches.setdefault(name, _Cache()))
        kind = AudioKind(settings, task, seed=0).fit(context)
        assert dict(kind.predict(context, "validation", ["a"]))["a"]["pred"].shape[0] == n_rows
    vad = caches["audio-vad"].arrays
    assert sorted(group for group, _ in vad) == ["vad", "vad-360"]
    np.testing.assert_array_equal(vad["vad", "a"], speech_probability(sound, 300, 30.0))
    np.testing.assert_array_equal(vad["vad-360", "a"], speech_probability(sound, 360, 30.0))


def test_per_task_training_settings_replace_the_specs_for_their_task_only(tmp_path: Path) -> None:
    from harness.spec import load_spec, resolve

    settings = AudioKind.Settings(
        learning_rate=1e-4, epochs=8, per_task={"expr": {"learning_rate": 1e-3, "epochs": 15}}
    )
    assert (settings.for_task("expr").learning_rate, settings.for_task("expr").epochs) == (1e-3, 15)
    assert settings.for_task("va") == settings and settings.for_task("au").learning_rate == 1e-4
    spec = tmp_path / "bad.yaml"
    spec.write_text("kind: audio\ntasks: [va]\nper_task: {exprs: {epochs: 3}}\n")
    with pytest.raises(
        SpecError, match=r"bad.yaml: key 'per_task'.*unknown tasks \['exprs'\]; registered tasks: va, expr"
    ):
        resolve(load_spec(str(spec)), "smoke")
    spec.write_text("kind: audio\ntasks: [va]\nper_task: {expr: {epoch: 3}}\n")
    with pytest.raises(SpecError, match=r"key 'per_task.expr.epoch'.*Extra inputs are not permitted"):
        resolve(load_spec(str(spec)), "smoke")


def test_windows_are_cut_whole_past_a_minute_of_audio() -> None:
    from harness.models.audio import cut_windows

    np.testing.assert_array_equal(
        cut_windows(np.arange(5.0), np.array([0, 1, 2]), 2.0, 3, 4), [[0, 1, 2], [2, 3, 4], [4, 0, 0]]
    )
    samples = np.ones(16000 * 62, np.float32)  # step 303 at 5 a second: the float length fell one sample short
    windows = cut_windows(samples, np.arange(0, 304), 5.0, 4 * 16000, 16000)
    assert windows.shape == (304, 64000) and windows[-1, -1] == 0 and windows[-1, 0] == 1
