"""RetinaFace crops from raw video (issue #9): weights loading, prior boxes and decoding against hand-made network
outputs, the choice of the track's face, crop geometry against the faces the synthetic generator drew, and the
``abaw faces`` pipeline (resume, no face, corrupt video, missing weights) with the real network architecture and
random weights saved by the test and loaded through the harness's loading path."""

import csv
import json
import math
import os
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_text
from PIL import Image
from typer.testing import CliRunner

from harness.cli import app
from harness.data.affwild2 import Dataset
from harness.data.synthetic.face import FaceCues, SubjectLook, draw_face, make_background
from harness.faces.align import FacePosition, Pick, aligned_crop, crop_matrix, pick_face, to_crop, track_side
from harness.faces.detector import (
    Detector,
    FaceError,
    Faces,
    build_network,
    decode,
    load_network,
    prior_boxes,
    weights_path,
)
from harness.faces.extract import (
    FaceSettings,
    TrackFaces,
    crops_root,
    done_track,
    extract_dataset,
    extract_video,
    iter_frames,
    make_detector,
    upright,
    weights_sha256,
)
from harness.locks import LOCKS, held

VA_HEADER = "valence,arousal"
# The anchors the retina-face package publishes for each stride (RetinaFace.py, ``_anchors_fpn``): an independent
# reference for the prior boxes, which the harness computes from the anchor scales.
PACKAGE_ANCHORS = {
    32: [[-248.0, -248.0, 263.0, 263.0], [-120.0, -120.0, 135.0, 135.0]],
    16: [[-56.0, -56.0, 71.0, 71.0], [-24.0, -24.0, 39.0, 39.0]],
    8: [[-8.0, -8.0, 23.0, 23.0], [0.0, 0.0, 15.0, 15.0]],
}


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Random weights (``random``) and random weights with firing heads (``firing``), saved once per module."""
    folder = tmp_path_factory.mktemp("retinaface")
    return {name: save_weights(folder / name, firing=name == "firing") for name in ("random", "firing")}


def deepface_home(home: Path, saved: Path) -> Path:
    """``home`` laid out as ``$DEEPFACE_HOME`` with ``saved`` as its weights (a link, not a 118 MB copy)."""
    target = home / ".deepface" / "weights" / "retinaface.pth"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(saved)
    return home


def save_weights(home: Path, firing: bool = False, seed: int = 0) -> Path:
    """Random RetinaFace weights saved where the harness looks (``$DEEPFACE_HOME/.deepface/weights``).

    ``firing``: the heads are set so that every anchor is a face (probability ~1) with its anchor as box and fixed
    landmarks, so the pipeline has faces to crop; the backbone stays random."""
    torch.manual_seed(seed)
    net = build_network()
    if firing:
        with torch.no_grad():
            for stride in (32, 16, 8):
                head = getattr(net, f"face_rpn_stride{stride}")
                for conv in (head.cls_score, head.bbox_pred, head.landmark_pred):
                    conv.weight.zero_()
                    conv.bias.zero_()
                head.cls_score.bias.copy_(torch.tensor([-8.0, -8.0, 8.0, 8.0]))
                points = torch.tensor([-0.2, -0.1, 0.2, -0.1, 0.0, 0.05, -0.15, 0.2, 0.15, 0.2])
                head.landmark_pred.bias.copy_(points.repeat(2))
    path = home / ".deepface" / "weights" / "retinaface.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return path


def drawn_video(path: Path, n_frames: int, people: int = 1, size=(96, 64)) -> list[list]:
    """A short h264 video of drawn faces (the synthetic generator's painter); returns each frame's landmarks."""
    import av

    rng = np.random.default_rng(3)
    width, height = size
    looks = [SubjectLook.random(rng) for _ in range(people)]
    background = make_background(height, width, rng)
    truth = []
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(n_frames):
            canvas = background.copy()
            marks = []
            for person in range(people):
                centre = (width * (2 * person + 1) / (2 * people) + index, height / 2)
                marks.append(draw_face(canvas, centre, 0.6 * height, 0.1 * person, FaceCues(), looks[person]))
            truth.append(marks)
            frame = av.VideoFrame.from_ndarray(canvas, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return truth


def mini_dataset(root: Path, frames: int = 3) -> Path:
    """An Aff-Wild2-shaped root with two raw videos: ``solo`` (one person) and ``duo`` (``duo_left``, ``duo_right``)."""
    ann = root / "6th ABAW Annotations" / "VA_Estimation_Challenge"
    rows = "".join("0.1,0.2\n" for _ in range(frames))
    for split, name in (("Train_Set", "solo"), ("Validation_Set", "duo_left"), ("Validation_Set", "duo_right")):
        write_text(ann / split / f"{name}.txt", f"{VA_HEADER}\n{rows}")
    drawn_video(root / "batch1" / "solo.mp4", frames)
    drawn_video(root / "batch2" / "duo.mp4", frames, people=2)
    return root


def with_test_track(root: Path) -> None:
    """A VA test set of one track, ``quiz`` (2 frames), with its release list and template."""
    drawn_video(root / "batch1" / "quiz.mp4", 2)
    write_text(root / "test_set" / "names_of_videos_in_each_test_set" / "VA_test_set_release.txt", "quiz\n")
    rows = "".join(f"quiz/{frame:05d}.jpg,0,0\n" for frame in (1, 2))
    write_text(root / "test_set" / "CVPR_6th_ABAW_VA_test_set_sample.txt", f"image_location,{VA_HEADER}\n{rows}")


# -- weights ---------------------------------------------------------------------------------------------------------
def test_saved_random_weights_load_through_the_harness_path(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))
    saved = save_weights(tmp_path, seed=5)
    assert weights_path() == saved
    net = load_network()
    reference = torch.load(saved, weights_only=True)
    assert set(net.state_dict()) == set(reference)
    assert all(torch.equal(net.state_dict()[k], reference[k]) for k in reference)
    assert not net.training
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in reference.items()}, saved)
    half = load_network()  # a converted float16 copy computes in float32, as the detector does
    assert all(v.dtype == reference[k].dtype for k, v in half.state_dict().items())
    name = next(k for k, v in reference.items() if v.is_floating_point())
    assert torch.equal(half.state_dict()[name], reference[name].half().float())


def test_missing_weights_name_the_file_and_never_download(tmp_path: Path, monkeypatch) -> None:
    import requests

    def no_network(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(requests, "head", no_network)
    monkeypatch.setattr(requests, "get", no_network)
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path / "empty"))
    expected = tmp_path / "empty" / ".deepface" / "weights" / "retinaface.pth"
    with pytest.raises(FaceError, match=r"weights not found at .*retinaface\.pth.*put it there"):
        load_network()
    assert str(expected) in str(pytest.raises(FaceError, load_network).value)
    assert not expected.exists()


def test_unreadable_or_foreign_weights_are_refused(tmp_path: Path, weight_files: dict[str, Path]) -> None:
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(FaceError, match="not a readable RetinaFace weights file"):
        load_network(garbage)
    foreign = tmp_path / "foreign.pth"
    torch.save({"conv.weight": torch.zeros(1)}, foreign)
    with pytest.raises(FaceError, match="not the retina-face package's RetinaFace weights"):
        load_network(foreign)

    listed = tmp_path / "list.pth"
    torch.save([1, 2], listed)
    with pytest.raises(FaceError, match="expected a state dict of RetinaFace weights, found a list"):
        load_network(listed)
    reshaped = tmp_path / "reshaped.pth"
    state = torch.load(weight_files["random"], weights_only=True)
    state["bn_data.weight"] = torch.ones(4)
    torch.save(state, reshaped)
    with pytest.raises(FaceError, match="RetinaFace weights of the wrong shapes"):
        load_network(reshaped)


def test_face_settings_out_of_range_are_refused() -> None:
    with pytest.raises(FaceError, match=r"face setting 'margin': 10.0 is out of range"):
        FaceSettings(margin=10.0)
    with pytest.raises(FaceError, match=r"face setting 'threshold'"):
        FaceSettings(threshold=1.5)


def test_a_file_without_video_is_a_clear_error(tmp_path: Path) -> None:
    import av

    sound = tmp_path / "voice.m4a"
    with av.open(str(sound), mode="w") as container:
        stream = container.add_stream("aac", rate=16000, layout="mono")
        chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        chunk.sample_rate, chunk.pts = 16000, 0
        container.mux(stream.encode(chunk))
        container.mux(stream.encode(None))
    with pytest.raises(FaceError, match=r"voice\.m4a: the file has no video stream"):
        list(iter_frames(sound))


# -- prior boxes and decoding ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stride", [32, 16, 8])
def test_prior_boxes_match_the_package_anchors_and_order(stride: int) -> None:
    anchors = prior_boxes(2, 3, stride).numpy()
    assert anchors.shape == (2 * 3 * 2, 4)
    base = np.array(PACKAGE_ANCHORS[stride])
    np.testing.assert_array_equal(anchors[:2], base)  # row 0, column 0, both anchors
    np.testing.assert_array_equal(anchors[2:4], base + [stride, 0, stride, 0])  # row 0, column 1
    np.testing.assert_array_equal(anchors[6:8], base + [0, stride, 0, stride])  # row 1, column 0


def _outputs(size: int = 64) -> list[torch.Tensor]:
    """Zero network outputs of one image of size × size: per stride (probabilities, box deltas, landmark deltas)."""
    outputs = []
    for stride in (32, 16, 8):
        cells = size // stride
        probs = torch.zeros(1, cells, cells, 4)
        probs[..., :2] = 1.0  # background
        outputs += [probs, torch.zeros(1, cells, cells, 8), torch.zeros(1, cells, cells, 20)]
    return outputs


def test_decoding_hand_made_outputs() -> None:
    outputs = _outputs()
    probs8, boxes8, points8 = outputs[6:9]
    # stride 8, row 3, column 5, anchor 1 (16 px, at x 40..55, y 24..39: centre 47.5, 31.5)
    probs8[0, 3, 5, 3] = 0.95
    boxes8[0, 3, 5, 4:8] = torch.tensor([0.1, -0.2, math.log(1.5), 0.0])
    landmark = torch.tensor([-0.25, -0.1, 0.25, -0.1, 0.0, 0.1, -0.2, 0.3, 0.2, 0.3])
    points8[0, 3, 5, 10:20] = landmark
    # the other anchor of the same cell (32 px) overlaps it heavily with a lower score: suppressed by NMS
    probs8[0, 3, 5, 2] = 0.93
    boxes8[0, 3, 5, 0:4] = torch.tensor([0.05, -0.1, math.log(0.75), math.log(0.5)])
    # a far face, kept; and one under the threshold, dropped
    probs8[0, 0, 0, 3] = 0.91
    outputs[0][0, 0, 0, 2] = 0.5
    (faces,) = decode(outputs, (64, 64), scale=0.5, threshold=0.9, nms_iou=0.4)
    assert len(faces) == 2
    np.testing.assert_allclose(faces.scores, [0.95, 0.91], rtol=1e-6)
    centre_x, centre_y = 0.1 * 16 + 47.5, -0.2 * 16 + 31.5
    expected = np.array([centre_x - 11.5, centre_y - 7.5, centre_x + 11.5, centre_y + 7.5]) / 0.5
    np.testing.assert_allclose(faces.boxes[0], expected, atol=1e-4)
    points = (landmark.numpy().reshape(5, 2) * 16 + [47.5, 31.5]) / 0.5
    np.testing.assert_allclose(faces.points[0], points, atol=1e-4)
    np.testing.assert_allclose(faces.boxes[1], np.array([0, 0, 15, 15]) / 0.5, atol=1e-4)


def test_a_batch_decodes_as_each_image_alone() -> None:
    """One batched suppression over the batch: no image's boxes suppress another's, an empty image stays empty."""
    generator = torch.Generator().manual_seed(0)
    batch, size = 4, 96
    outputs = []
    for stride in (32, 16, 8):
        cells = size // stride
        probs = torch.rand(batch, cells, cells, 4, generator=generator) ** 3
        probs[2] = 0.0  # the third image: no face
        outputs += [probs, 0.3 * torch.randn(batch, cells, cells, 8, generator=generator)]
        outputs.append(torch.randn(batch, cells, cells, 20, generator=generator))
    together = decode(outputs, (size, size), scale=0.5, threshold=0.6, nms_iou=0.4)
    assert len(together) == batch and len(together[2]) == 0
    assert sum(len(faces) for faces in together) > batch  # several faces an image survive suppression
    for index, faces in enumerate(together):
        (alone,) = decode([t[index : index + 1] for t in outputs], (size, size), scale=0.5, threshold=0.6)
        np.testing.assert_array_equal(faces.scores, alone.scores)
        np.testing.assert_array_equal(faces.boxes, alone.boxes)
        np.testing.assert_array_equal(faces.points, alone.points)


def test_decoding_clips_boxes_to_the_image_and_finds_nothing_below_threshold() -> None:
    outputs = _outputs()
    outputs[0][0, 1, 1, 2] = 0.99  # stride 32, a 512 px anchor: clipped to the 64 px image
    (faces,) = decode(outputs, (64, 64), threshold=0.9)
    np.testing.assert_allclose(faces.boxes[0], [0, 0, 63, 63])
    (none,) = decode(_outputs(), (64, 64), threshold=0.9)
    assert len(none) == 0 and none.points.shape == (0, 5, 2)


def test_detector_runs_the_real_architecture_on_a_batch(weight_files: dict[str, Path]) -> None:
    net = load_network(weight_files["firing"])
    detector = Detector(net, detect_size=64, threshold=0.9)
    frames = np.random.default_rng(0).integers(0, 255, (2, 48, 96, 3), dtype=np.uint8)
    pixels, scale = detector.prepare(frames)
    assert pixels.shape == (2, 32, 64, 3) and scale == pytest.approx(64 / 96)
    found = detector.detect(frames)
    assert len(found) == 2 and all(len(f) > 0 for f in found)
    for faces in found:  # boxes come back in frame pixels, inside the frame
        assert faces.boxes[:, [0, 2]].max() <= 96 and faces.boxes[:, [1, 3]].max() <= 48
        assert faces.boxes.min() >= 0


# -- which face is the track's -----------------------------------------------------------------------------------------
def _faces(*boxes) -> Faces:
    boxes = np.array(boxes, np.float32)
    points = np.zeros((len(boxes), 5, 2), np.float32)
    return Faces(boxes, np.full(len(boxes), 0.99, np.float32), points)


def test_left_and_right_tracks_take_faces_by_position() -> None:
    two = _faces([200, 10, 260, 80], [20, 10, 80, 80])
    assert pick_face(two, "left", 300, None) == Pick(1)
    assert pick_face(two, "right", 300, None) == Pick(0)
    one_on_the_right = _faces([200, 10, 260, 80])
    assert pick_face(one_on_the_right, "left", 300, None) == Pick(None)
    assert pick_face(one_on_the_right, "right", 300, None) == Pick(0)
    assert track_side("video10_1_left") == "left" and track_side("118-30-640x480") is None


def test_two_faces_where_one_is_expected_follow_the_previous_face() -> None:
    previous = FacePosition((20, 10, 80, 80), (40, 40), (60, 40))
    two = _faces([150, 5, 240, 95], [22, 12, 82, 82])  # a larger stranger, and the track's person
    assert pick_face(two, None, 300, previous) == Pick(1, ambiguous=True)
    assert pick_face(two, None, 300, None) == Pick(0, ambiguous=True)  # no history: the largest
    assert pick_face(_faces([22, 12, 82, 82], [0, 0, 5, 5]), None, 300, previous) == Pick(0, ambiguous=False)
    note = TrackFaces("t", "t.mp4", frames=10, detected=10, ambiguous=4).note()
    assert note is not None and "4 frames showed another face" in note


# -- crops against the faces the generator drew ------------------------------------------------------------------------
def test_crops_match_the_generator_faces_and_level_the_eyes(synthetic_tiny: Path) -> None:
    """Known boxes and eyes from synthetic_faces/ fed to the crop step reproduce the release-style crops that the
    generator cut from the same frames (112 px, margin 1.25), with the eyes level and symmetric."""
    video = next(p for p in sorted((synthetic_tiny / "batch1").glob("*.mp4")) if "_" not in p.stem)
    with open(synthetic_tiny / "synthetic_faces" / f"{video.stem}.csv", encoding="utf-8") as handle:
        truth = {int(r["frame"]): r for r in csv.DictReader(handle)}
    checked = 0
    for number, frame in enumerate(iter_frames(video), start=1):
        if number > 12:
            break
        if number not in truth:
            continue
        row = {k: float(v) for k, v in truth[number].items() if k not in ("frame", "track")}
        face = FacePosition(
            (row["x0"], row["y0"], row["x1"], row["y1"]),
            (row["left_eye_x"], row["left_eye_y"]),
            (row["right_eye_x"], row["right_eye_y"]),
        )
        ours = np.asarray(aligned_crop(Image.fromarray(frame), face, 112, 1.25), float)
        release = np.asarray(Image.open(synthetic_tiny / "cropped_aligned" / video.stem / f"{number:05d}.jpg"), float)
        assert np.abs(ours - release).mean() < 6  # the same geometry; h264 and JPEG noise only
        moved = FacePosition(tuple(np.add(face.box, [6, 0, 6, 0])), face.left_eye, face.right_eye)
        shifted = np.asarray(aligned_crop(Image.fromarray(frame), moved, 112, 1.25), float)
        assert np.abs(shifted - release).mean() > 2 * np.abs(ours - release).mean()
        eyes = to_crop(crop_matrix(face, 112, 1.25), [face.left_eye, face.right_eye])
        assert eyes[0, 1] == pytest.approx(eyes[1, 1], abs=1e-6)  # level
        assert (eyes[0, 0] + eyes[1, 0]) / 2 == pytest.approx(56, abs=1.0)  # centred: the box is centred on the face
        checked += 1
    assert checked >= 5


def test_alignment_levels_a_rolled_face() -> None:
    """A face drawn rolled by 0.3 rad comes out of the crop with its eyes level (within a pixel, found by colour)."""
    canvas = np.full((120, 160, 3), 200, np.uint8)
    marks = draw_face(canvas, (80, 60), 80.0, 0.3, FaceCues(), SubjectLook.random(np.random.default_rng(1)))
    face = FacePosition(marks.box, marks.left_eye, marks.right_eye)
    matrix = crop_matrix(face, 64, 1.25)
    eyes = to_crop(matrix, [marks.left_eye, marks.right_eye])
    assert eyes[0, 1] == pytest.approx(eyes[1, 1], abs=1e-6)
    scale = 1.25 * (marks.box[3] - marks.box[1]) / 64  # frame pixels per crop pixel
    assert math.dist(eyes[0], eyes[1]) == pytest.approx(math.dist(marks.left_eye, marks.right_eye) / scale)
    crop = aligned_crop(Image.fromarray(canvas), face, 64, 1.25)
    assert crop.size == (64, 64)
    back = matrix @ np.array([*eyes[0], 1.0])  # crop → frame maps the eye back onto itself
    np.testing.assert_allclose(back, marks.left_eye, atol=1e-6)


# -- the pipeline ------------------------------------------------------------------------------------------------------
def test_extract_video_writes_every_frame_and_is_atomic(tmp_path: Path, weight_files: dict[str, Path]) -> None:
    video = tmp_path / "solo.mp4"
    drawn_video(video, 4)
    detector = Detector(load_network(weight_files["firing"]), detect_size=64)
    settings = FaceSettings(size=32, detect_size=64, batch=3)
    (result,) = extract_video(detector, video, {"solo": tmp_path / "crops" / "solo"}, settings)
    assert (result.frames, result.crops, result.detected) == (4, 4, 4)
    assert result.crop_frames == [1, 2, 3, 4] and result.first_face == 1
    assert Image.open(tmp_path / "crops" / "solo" / "00004.jpg").size == (32, 32)
    assert done_track(tmp_path / "crops" / "solo", video) is not None
    assert [p.name for p in (tmp_path / "crops").iterdir()] == ["solo"]  # no temporary folder left
    (tmp_path / "crops" / "solo" / "00002.jpg").unlink()  # a torn track is not trusted
    assert done_track(tmp_path / "crops" / "solo", video) is None


def test_a_video_recopied_at_its_size_is_cut_anew_only_if_its_contents_differ(
    tmp_path: Path, weight_files: dict[str, Path]
) -> None:
    video = tmp_path / "solo.mp4"
    drawn_video(video, 3)
    detector = Detector(load_network(weight_files["firing"]), detect_size=64)
    extract_video(detector, video, {"solo": tmp_path / "crops" / "solo"}, FaceSettings(size=32, detect_size=64))
    original = video.read_bytes()
    video.write_bytes(original)  # the same bytes copied again: another mtime
    os.utime(video, ns=(1, 1))
    assert done_track(tmp_path / "crops" / "solo", video) is not None
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0xFF  # same size, other contents
    video.write_bytes(bytes(damaged))
    os.utime(video, ns=(2, 2))
    assert done_track(tmp_path / "crops" / "solo", video) is None


def test_a_video_that_decodes_short_of_its_stated_frames_is_an_error_leaving_no_folder(
    tmp_path: Path, weight_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import harness.faces.extract as extract

    video = tmp_path / "solo.mp4"
    drawn_video(video, 4)
    assert extract.stated_frames(video) == 4
    monkeypatch.setattr(extract, "stated_frames", lambda path: 40)  # a torn file's header still says 40
    detector = Detector(load_network(weight_files["firing"]), detect_size=64)
    with pytest.raises(FaceError, match=r"solo\.mp4: decoded 4 of the 40 frames its container states: a truncated"):
        extract_video(detector, video, {"solo": tmp_path / "crops" / "solo"}, FaceSettings(size=32, detect_size=64))
    assert not (tmp_path / "crops").exists() or not any((tmp_path / "crops").iterdir())


def test_crops_do_not_depend_on_the_threads_and_a_failed_write_leaves_no_folder(
    tmp_path: Path, weight_files: dict[str, Path], monkeypatch
) -> None:
    import harness.faces.extract as extract

    video = tmp_path / "solo.mp4"
    drawn_video(video, 7)
    detector = Detector(load_network(weight_files["firing"]), detect_size=64)
    settings = FaceSettings(size=32, detect_size=64, batch=2)
    for threads in (1, 3):
        extract_video(detector, video, {"solo": tmp_path / f"crops-{threads}" / "solo"}, settings, threads=threads)
    one, three = (sorted((tmp_path / f"crops-{n}" / "solo").glob("*.jpg")) for n in (1, 3))
    assert [p.name for p in one] == [p.name for p in three] and len(one) == 7
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(one, three, strict=True))

    def failing(image, face, path, size, margin) -> None:
        if path.name == "00005.jpg":
            raise OSError(f"{path}: No space left on device")
        write(image, face, path, size, margin)

    write = extract._write_crop
    monkeypatch.setattr(extract, "_write_crop", failing)
    with pytest.raises(OSError, match="00005.jpg: No space left"):
        extract_video(detector, video, {"solo": tmp_path / "torn" / "solo"}, settings, threads=3)
    assert list((tmp_path / "torn").iterdir()) == []  # neither the track nor its temporary folder


def test_a_frame_without_a_face_reuses_the_previous_face(tmp_path: Path) -> None:
    from harness.faces.extract import _TrackWriter
    from harness.faces.overlap import BoundedPool

    video = tmp_path / "v.mp4"
    drawn_video(video, 1)
    pool = BoundedPool(2, 4)
    stamp = {"video_size": video.stat().st_size}
    writer = _TrackWriter("v", video, stamp, tmp_path / "crops" / "v", FaceSettings(size=32), pool)
    image = np.zeros((64, 96, 3), np.uint8)
    writer.add(1, image, Faces.empty())  # before the first face: no crop
    face = _faces([10, 10, 50, 60])
    face.points[0, :2] = [[20, 30], [40, 30]]
    writer.add(2, image, face)
    writer.add(3, image, Faces.empty())  # reused
    result = writer.finish()
    pool.close()
    assert result.crop_frames == [2, 3] and (result.detected, result.reused, result.first_face) == (1, 1, 2)


def test_a_corrupt_video_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    with pytest.raises(FaceError, match=r"bad\.mp4: unreadable or corrupt video"):
        list(iter_frames(bad))


def test_abaw_faces_end_to_end_resumes_and_reports(tmp_path: Path, weight_files: dict[str, Path], monkeypatch) -> None:
    root = mini_dataset(tmp_path / "data")
    monkeypatch.setenv("ABAW_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ABAW_STORE", raising=False)
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path / "df"))
    runner = CliRunner()
    args = ["faces", "--data", str(root), "--size", "32", "--detect-size", "64", "--json"]
    missing = runner.invoke(app, args)
    assert missing.exit_code == 2 and "retinaface.pth" in missing.output
    deepface_home(tmp_path / "df", weight_files["firing"])
    first = runner.invoke(app, [*args, "--tracks", "solo,duo_left"])
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    crops = Path(report["root"])
    assert crops.is_relative_to(tmp_path / "home" / "store") and crops.name == "cropped_aligned"
    assert sorted(t["track"] for t in report["computed"]) == ["duo_left", "solo"]
    assert all(t["crops"] == 3 for t in report["computed"])
    assert sorted(p.name for p in (crops / "solo").glob("*.jpg")) == ["00001.jpg", "00002.jpg", "00003.jpg"]
    second = json.loads(runner.invoke(app, args).stdout)  # only the track not done yet is computed
    assert [t["track"] for t in second["computed"]] == ["duo_right"]
    assert second["already_done"] == ["duo_left", "solo"]
    (crops / "solo" / "00002.jpg").unlink()  # a torn track, and the temporary folder of a run killed long ago
    stale = crops / ".duo_left.tmp-1-dead"
    stale.mkdir()
    os.utime(stale, (1, 1))
    third = json.loads(runner.invoke(app, args).stdout)
    assert [t["track"] for t in third["computed"]] == ["solo"] and not stale.exists()
    assert (crops / "solo" / "00002.jpg").is_file()
    unknown = runner.invoke(app, [*args, "--tracks", "sollo"])
    assert unknown.exit_code == 2 and "did you mean solo" in unknown.output


def test_processes_sharing_a_store_cut_each_video_once(tmp_path: Path, weight_files, monkeypatch) -> None:
    """torchrun's ranks (or two ``abaw faces``) run extract_dataset at once: a video another process holds is left
    to it and waited for, and not cut again when that process finished it meanwhile."""
    root = mini_dataset(tmp_path / "data")
    monkeypatch.setenv("DEEPFACE_HOME", str(deepface_home(tmp_path / "df", weight_files["firing"])))
    dataset, settings, store = Dataset(root), FaceSettings(size=32, detect_size=64), tmp_path / "store"
    crops = crops_root(store, settings, weights_sha256(None))
    runs = []
    with held(crops.parent / LOCKS / "solo"):  # another process is cutting solo
        other = threading.Thread(target=lambda: runs.append(extract_dataset(dataset, store, settings)))
        other.start()
        deadline = time.monotonic() + 60
        while done_track(crops / "duo_right", dataset.layout.videos["duo"]) is None and time.monotonic() < deadline:
            other.join(0.05)  # meanwhile this one cuts duo, which nobody holds
        assert other.is_alive() and not (crops / "solo").exists()  # and waits for solo
        detector, _ = make_detector(settings)
        extract_video(detector, dataset.layout.videos["solo"], {"solo": crops / "solo"}, settings)
    other.join(60)
    (run,) = runs
    assert sorted(faces.track for faces in run.computed) == ["duo_left", "duo_right"] and run.reused == ["solo"]
    assert done_track(crops / "solo", dataset.layout.videos["solo"]) is not None


def test_abaw_faces_when_no_face_is_ever_found(tmp_path: Path, weight_files: dict[str, Path], monkeypatch) -> None:
    root = mini_dataset(tmp_path / "data", frames=2)
    monkeypatch.setenv("ABAW_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ABAW_STORE", raising=False)
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path / "df"))
    deepface_home(tmp_path / "df", weight_files["random"])  # random heads: nothing reaches the 0.9 threshold
    result = CliRunner().invoke(app, ["faces", "--data", str(root), "--detect-size", "64", "--tracks", "solo"])
    assert result.exit_code == 0, result.output
    assert "solo: no face found in any of its 2 frames" in result.output
    crops = next((tmp_path / "home" / "store").glob("faces-*/cropped_aligned"))
    assert done_track(crops / "solo", root / "batch1" / "solo.mp4").crops == 0


# -- the video kind's `faces` setting ---------------------------------------------------------------------------------
def test_the_faces_setting_and_detector_weights_are_part_of_the_video_key(
    handmade_root: Path, tmp_path: Path, weight_files: dict[str, Path], monkeypatch
) -> None:
    from harness.runner import plan_nodes

    systems = tmp_path / "systems"
    base = "kind: video\ntasks: [va]\npretrained: false\n"
    write_text(systems / "crops_release.yaml", base)
    write_text(systems / "crops_retina.yaml", base + "faces: retinaface\n")
    dataset = Dataset(handmade_root)

    def plan(name: str):
        (last,) = plan_nodes(name, ["va"], dataset, "smoke", systems)
        return last

    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path / "none"))
    release = plan("crops_release")
    assert "faces" not in release.material["settings"]  # the default leaves earlier keys as they were
    with pytest.raises(FaceError, match="retinaface.pth"):
        plan("crops_retina")
    monkeypatch.setenv("DEEPFACE_HOME", str(deepface_home(tmp_path / "a", weight_files["random"])))
    retina = plan("crops_retina")
    assert retina.material["settings"]["faces"] == "retinaface" and retina.key != release.key
    assert "faces_weights_sha256" in retina.material["extra"]
    monkeypatch.setenv("DEEPFACE_HOME", str(deepface_home(tmp_path / "b", weight_files["firing"])))
    assert plan("crops_retina").key != retina.key  # other detector weights, other crops, another node


def test_the_video_kind_sees_retinaface_crops(handmade_root: Path, tmp_path: Path, weight_files, monkeypatch) -> None:
    from harness.faces.extract import retinaface_view

    monkeypatch.setenv("ABAW_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("DEEPFACE_HOME", str(deepface_home(tmp_path / "df", weight_files["firing"])))
    dataset = Dataset(handmade_root)
    split = dataset.split("expr", "validation")  # 118-30-640x480: a 5-frame video; the release has crops 2..4
    view = retinaface_view(dataset, split, FaceSettings(size=32, detect_size=64))
    assert split.face_frames("118-30-640x480").tolist() == [2, 3, 4]
    assert view.face_frames("118-30-640x480").tolist() == [1, 2, 3, 4, 5]
    path = view.frame_path("118-30-640x480", 5)
    assert path.parent.parent.parent.parent == tmp_path / "store" and Image.open(path).size == (32, 32)
    assert view.track("118-30-640x480").n_rows == 4
    assert (path.parent.parent / "video1").is_dir()  # every track of the dataset, both tasks, all splits


@pytest.mark.parametrize("command", ["faces", "predict"])
def test_faces_and_predict_help_give_an_example(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "Example" in result.stdout and f"abaw {command} " in result.stdout


def test_a_dynamic_spec_over_retinaface_crops_places_them_by_their_frames(
    tmp_path: Path, weight_files, monkeypatch
) -> None:
    """Run as ``dyn[faces=retinaface]``: the switch moves the organizers'-crop video spec under it onto RetinaFace."""
    from harness.leaderboard import Leaderboard
    from harness.runner import plan_nodes, run_system
    from harness.store import Store

    root = mini_dataset(tmp_path / "data", frames=8)  # 0.32 s at 25 fps: two steps at 5 a second
    with_test_track(root)
    monkeypatch.setenv("ABAW_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("DEEPFACE_HOME", str(deepface_home(tmp_path / "df", weight_files["firing"])))
    systems = tmp_path / "systems"
    video = "kind: video\ntasks: [va]\nimage_size: 32\nbatch_size: 2\nepochs: 1\nframe_step: 1\n"
    write_text(systems / "vid.yaml", video)
    dynamic = "kind: dynamic\ntasks: [va]\ninputs: [vid]\nwindow_s: 1\nepochs: 1\nlayers: 1\nheads: 4\n"
    write_text(systems / "dyn.yaml", dynamic)
    dataset, store, board = Dataset(root), Store(tmp_path / "store"), Leaderboard(tmp_path / "b.db")
    results = run_system("dyn[faces=retinaface]", ["va"], dataset, "smoke", store, board, systems)
    assert [r.plan.name for r in results] == ["vid[faces=retinaface]", "dyn[faces=retinaface]"]
    assert results[-1].score is not None
    assert [row.system for row in board.rows()] == ["dyn[faces=retinaface]"]
    video_key = plan_nodes("vid[faces=retinaface]", ["va"], dataset, "smoke", systems)[-1].key
    assert video_key == results[0].plan.key != plan_nodes("vid", ["va"], dataset, "smoke", systems)[-1].key
    video_node = store.node(video_key)
    frames = video_node.read_track("frames-validation", "duo_left")  # the release has no crops: RetinaFace's
    assert frames.tolist() == [[frame] for frame in range(1, 9)]
    assert len(video_node.read_track("emb-validation", "duo_left")) == 8


def test_dry_run_counts_raw_frames_for_a_retinaface_graph(tmp_path: Path, weight_files, monkeypatch) -> None:
    from harness.cost import dry_run
    from harness.faces.extract import extract_dataset
    from harness.store import Store

    root = mini_dataset(tmp_path / "data", frames=3)  # solo: 3 frames; duo: 3 frames, two tracks
    with_test_track(root)
    monkeypatch.setenv("DEEPFACE_HOME", str(deepface_home(tmp_path / "df", weight_files["firing"])))
    write_text(tmp_path / "systems" / "vid.yaml", "kind: video\ntasks: [va]\nepochs: 2\n")
    dataset, store = Dataset(root), Store(tmp_path / "store")

    def work() -> dict:
        [node] = dry_run("vid[faces=retinaface]", ["va"], dataset, "smoke", store, tmp_path / "systems")
        return node.work

    assert work() == {"crops": 11, "train crops": 3, "epochs": 2.0, "RetinaFace frames": 8}
    extract_dataset(dataset, store.root, FaceSettings())
    assert work()["RetinaFace frames"] == 0  # cut once; every faces: retinaface node shares them


@pytest.mark.parametrize(("rotation", "turns"), [(0, 0), (-90, -1), (90, 1), (180, 2), (-180, 2), (89.6, 1)])
def test_frames_are_turned_as_their_container_says_to_show_them(rotation: float, turns: int) -> None:
    """A phone's portrait video stores sideways frames and a display matrix (-90: a quarter turn clockwise)."""
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    assert np.array_equal(upright(image, rotation), np.rot90(image, turns))
    assert upright(image, rotation).flags.c_contiguous
