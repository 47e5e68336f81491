"""``abaw predict`` for every kind (issue #21): a dataset video, predicted from the crops the runner used, gives what
the runner wrote for it, node by node up to fusion; a video without sound gets the audio input's prior.

The nodes are those of the conformance specs (:mod:`kind_specs`), shared with the conformance suite through the
session's ``conformance_world`` (computed here when this file runs alone)."""

import numpy as np
import pytest
from conftest import write_video

from harness.errors import SpecError
from harness.predict import predict_video
from harness.runner import plan_nodes, run_system

SYSTEMS = ("conf_video", "conf_dynamic", "conf_kelm", "conf_audio", "conf_dwf_all")


@pytest.fixture(scope="module")
def trained(conformance_world):
    """Every node of :data:`SYSTEMS` complete in the shared store (store hits after the conformance suite)."""
    dataset, store, board, systems = conformance_world
    for system in SYSTEMS:
        run_system(system, ["va"], dataset, "smoke", store, board, systems)
    return conformance_world


def _test_track(dataset):
    """A VA test track with a face in some frames, its video's container count equal to its template rows."""
    from harness.data.media import probe_video

    split = dataset.split("va", "test")
    for track in split.tracks:
        if len(split.face_frames(track.name)) and probe_video(track.video_path).n_frames == track.n_rows:
            return track
    pytest.fail("no VA test track of the tiny dataset has faces and a frame count equal to its template rows")


@pytest.mark.parametrize("system", SYSTEMS)
def test_predict_gives_what_the_runner_wrote_for_a_dataset_video(trained, system: str) -> None:
    dataset, store, _, systems = trained
    track = _test_track(dataset)
    side = track.name.rsplit("_", 1)[1] if track.name.endswith(("_left", "_right")) else None
    stored_before = sorted(path for path in store.root.rglob("*") if path.is_file())
    result = predict_video(
        system,
        track.video_path,
        dataset,
        "smoke",
        store,
        side=side,
        systems=systems,
        crops=track.crops_dir,
        tasks=["va"],
    )
    own = plan_nodes(system, ["va"], dataset, "smoke", systems)[-1]
    written = store.node(own.key).read_track("pred-test", track.name)
    assert result.outputs["va"].shape == written.shape == (track.n_rows, 2)
    np.testing.assert_allclose(result.outputs["va"], written, rtol=0, atol=1e-5)
    assert result.faces == len(dataset.split("va", "test").face_frames(track.name))
    np.testing.assert_allclose(result.times[:3], np.arange(3) / dataset.split("va", "test").fps(track.name))
    assert sorted(path for path in store.root.rglob("*") if path.is_file()) == stored_before  # caches: scratch only


def test_a_video_without_sound_gets_the_audio_inputs_prior(trained, tmp_path) -> None:
    dataset, store, _, systems = trained
    silent = write_video(tmp_path / "silent.mp4", 25, 30, audio=False)
    result = predict_video("conf_audio", silent, dataset, "smoke", store, systems=systems, tasks=["va"])
    assert result.outputs["va"].shape == (30, 2)
    assert np.ptp(result.outputs["va"], axis=0).max() == 0  # one constant row: the prior
    assert any("silent.mp4: the video has no audio stream" in note for note in result.notes), result.notes


def test_an_untrained_input_is_named(trained, tmp_path) -> None:
    dataset, store, _, systems = trained
    (systems / "conf_dynamic_new.yaml").write_text("kind: dynamic\nseed: 4\ninputs: [conf_video]\ntasks: [va]\n")
    (systems / "conf_fuse_new.yaml").write_text("kind: dwf\ntasks: [va]\ninputs: [conf_dynamic_new, conf_kelm]\n")
    video = write_video(tmp_path / "clip.mp4", 25, 5)
    expected = r"conf_dynamic_new \(va\) \(an input of 'conf_fuse_new'\) is not trained .* run `abaw run conf_fuse_new"
    with pytest.raises(SpecError, match=expected):
        predict_video("conf_fuse_new", video, dataset, "smoke", store, systems=systems, tasks=["va"])
