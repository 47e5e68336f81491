"""The synthetic face renderer: landmarks agree with the drawing, each cue moves the pixels it should, and the
eight expressions stay apart after shrinking the crop to 48×48."""

import math

import numpy as np
import pytest
from PIL import Image

from harness.data.synthetic.face import (
    CUE_RANGES,
    HAIR_STYLES,
    FaceCues,
    FaceLandmarks,
    SubjectLook,
    draw_face,
    make_background,
)

HEIGHT = 100.0
CENTER = (120.0, 110.0)
LOOK = SubjectLook(skin=(220, 180, 150), hair=(40, 30, 25))
LOOKS = [
    LOOK,
    SubjectLook(skin=(110, 72, 50), hair=(200, 165, 105), hair_style="long", glasses=True, beard=True, aspect=1.2),
    SubjectLook(skin=(240, 200, 170), hair=(20, 20, 20), hair_style="bald", aspect=1.45, eye_spacing=0.35),
    SubjectLook(skin=(180, 130, 95), hair=(120, 60, 30), hair_style="fringe", light=0.8, mouth_width=0.48),
]
NEUTRAL = FaceCues()
# one full-intensity cue set per ABAW expression, in ABAW order (close to what signals.py draws)
EXPRESSIONS = {
    "neutral": NEUTRAL,
    "anger": FaceCues(mouth_curve=-0.5, eye_open=0.65, brow_raise=-0.7, brow_tilt=-0.9),
    "disgust": FaceCues(mouth_curve=-0.5, mouth_open=0.1, eye_open=0.45, brow_raise=-0.2, nose_wrinkle=0.95),
    "fear": FaceCues(mouth_curve=-0.3, mouth_open=0.4, eye_open=0.95, brow_raise=0.6, brow_tilt=0.7),
    "happiness": FaceCues(mouth_curve=0.9, mouth_open=0.3, eye_open=0.55, brow_raise=0.1),
    "sadness": FaceCues(mouth_curve=-0.8, eye_open=0.35, brow_tilt=0.85),
    "surprise": FaceCues(mouth_open=0.85, eye_open=1.0, brow_raise=0.95, brow_tilt=0.2),
    "other": FaceCues(mouth_asym=0.85, mouth_open=0.05),
}


def render(cues=NEUTRAL, look=LOOK, roll=0.0, center=CENTER, height=HEIGHT) -> tuple[np.ndarray, FaceLandmarks]:
    """Draw one face on a mid-grey 240×220 frame."""
    frame = np.full((220, 240, 3), 128, dtype=np.uint8)
    return frame, draw_face(frame, center, height, roll, cues, look)


def luma(frame: np.ndarray) -> np.ndarray:
    return frame.astype(float) @ np.array([0.299, 0.587, 0.114])


def region(frame: np.ndarray, x: float, y: float, half_w: float, half_h: float) -> np.ndarray:
    return frame[int(y - half_h) : int(y + half_h) + 1, int(x - half_w) : int(x + half_w) + 1]


# --- landmarks ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("look", LOOKS)
@pytest.mark.parametrize("roll", [-0.25, 0.0, 0.2])
def test_box_is_centred_and_holds_the_landmarks(look, roll):
    _, marks = render(look=look, roll=roll)
    x0, y0, x1, y1 = marks.box
    assert (x0 + x1) / 2 == pytest.approx(CENTER[0]) and (y0 + y1) / 2 == pytest.approx(CENTER[1])
    assert 0.95 * HEIGHT <= y1 - y0 <= 1.2 * HEIGHT  # tight around the head oval (and hair)
    assert marks.points.shape == (5, 2)
    for x, y in marks.points:
        assert x0 < x < x1 and y0 < y < y1


def test_landmarks_are_ordered_like_a_face():
    _, marks = render()
    assert marks.left_eye[0] < marks.nose[0] < marks.right_eye[0]
    assert marks.mouth_left[0] < marks.nose[0] < marks.mouth_right[0]
    assert marks.left_eye[1] == marks.right_eye[1] < marks.nose[1] < marks.mouth_left[1]
    assert marks.left_eye[0] < CENTER[0] < marks.right_eye[0]


@pytest.mark.parametrize("roll", [-0.25, 0.1, 0.3])
def test_roll_rotates_every_landmark_about_the_centre(roll):
    cues = FaceCues(mouth_curve=0.7, mouth_asym=0.4)
    _, upright = render(cues)
    _, rolled = render(cues, roll=roll)
    rotation = np.array([[math.cos(roll), -math.sin(roll)], [math.sin(roll), math.cos(roll)]])
    expected = (upright.points - CENTER) @ rotation.T + CENTER
    np.testing.assert_allclose(rolled.points, expected, atol=1e-9)
    # positive roll turns the face clockwise on screen: the right eye drops below the left one
    assert (rolled.right_eye[1] > rolled.left_eye[1]) == (roll > 0)


def test_landmarks_scale_with_the_face_height():
    _, small = render(height=60.0)
    _, large = render(height=180.0)
    np.testing.assert_allclose((large.points - CENTER), 3.0 * (small.points - CENTER), atol=1e-9)


# --- pixels: only the box changes, each cue changes its region -----------------------------------------------------


@pytest.mark.parametrize("look", LOOKS)
@pytest.mark.parametrize("roll", [-0.25, 0.0, 0.15])
def test_pixels_outside_the_box_are_untouched(look, roll):
    rng = np.random.default_rng(3)
    before = rng.integers(0, 256, size=(220, 240, 3), dtype=np.uint8)
    frame = before.copy()
    marks = draw_face(frame, CENTER, HEIGHT, roll, EXPRESSIONS["surprise"], look)
    rows, cols = np.nonzero((frame != before).any(axis=2))
    x0, y0, x1, y1 = marks.box
    assert len(rows) > 0.5 * HEIGHT * HEIGHT / look.aspect  # most of the head is drawn
    assert cols.min() >= x0 and cols.max() <= x1 and rows.min() >= y0 and rows.max() <= y1


def lip_heights(frame: np.ndarray, marks: FaceLandmarks) -> tuple[float, float]:
    """Mean row of the reddish lip pixels near the mouth corners and near its centre."""
    rgb = frame.astype(int)
    lips = (rgb[..., 0] - rgb[..., 1]) > 70
    left, right = marks.mouth_left[0], marks.mouth_right[0]
    width = right - left
    top, bottom = int(marks.nose[1]) + 5, int(marks.mouth_left[1] + 0.2 * HEIGHT)
    rows, cols = np.nonzero(lips[top:bottom])
    cols = cols.astype(float)
    corners = (cols < left + 0.2 * width) | (cols > right - 0.2 * width)
    centre = np.abs(cols - (left + right) / 2) < 0.15 * width
    return float(rows[corners].mean()), float(rows[centre].mean())


def test_mouth_curve_bends_the_mouth_both_ways():
    look = SubjectLook(skin=(225, 190, 160), hair=(40, 30, 25), lips=(190, 40, 45))
    smile, smile_marks = render(FaceCues(mouth_curve=1.0), look)
    frown, frown_marks = render(FaceCues(mouth_curve=-1.0), look)
    smile_corners, smile_centre = lip_heights(smile, smile_marks)
    frown_corners, frown_centre = lip_heights(frown, frown_marks)
    assert smile_centre - smile_corners > 0.03 * HEIGHT  # corners above the centre
    assert frown_corners - frown_centre > 0.025 * HEIGHT  # corners below the centre
    # the corner landmarks move by ~8 % of the face height relative to the mouth centre, each way
    assert frown_marks.mouth_left[1] - smile_marks.mouth_left[1] > 0.12 * HEIGHT
    mouth = region(smile, smile_marks.nose[0], smile_marks.mouth_left[1], 0.25 * HEIGHT, 0.1 * HEIGHT)
    other = region(frown, smile_marks.nose[0], smile_marks.mouth_left[1], 0.25 * HEIGHT, 0.1 * HEIGHT)
    assert (np.abs(luma(mouth) - luma(other)) > 40).mean() > 0.1


def test_mouth_open_shows_a_dark_cavity():
    dark = []
    for amount in (0.0, 0.5, 1.0):
        frame, marks = render(FaceCues(mouth_open=amount))
        mouth = region(frame, marks.nose[0], marks.mouth_left[1] + 0.05 * HEIGHT, 0.15 * HEIGHT, 0.12 * HEIGHT)
        dark.append(int((luma(mouth) < 50).sum()))
    assert dark[0] < dark[1] < dark[2]
    assert dark[2] > 0.005 * HEIGHT * HEIGHT


def test_mouth_asym_lifts_one_corner():
    for sign in (-1.0, 1.0):
        _, marks = render(FaceCues(mouth_asym=sign))
        raised, other = (marks.mouth_right, marks.mouth_left) if sign > 0 else (marks.mouth_left, marks.mouth_right)
        assert other[1] - raised[1] > 0.05 * HEIGHT
    plain, _ = render()
    smirk, marks = render(FaceCues(mouth_asym=1.0))
    right = region(plain, marks.mouth_right[0], marks.mouth_right[1], 0.06 * HEIGHT, 0.08 * HEIGHT)
    assert (np.abs(luma(right) - luma(region(smirk, *marks.mouth_right, 0.06 * HEIGHT, 0.08 * HEIGHT))) > 40).any()


@pytest.mark.parametrize("look", LOOKS)
def test_closed_eyes_are_darker_and_lose_their_whites(look):
    means, whites = [], []
    for amount in (0.0, 0.5, 1.0):
        frame, marks = render(FaceCues(eye_open=amount), look)
        eye = region(frame, *marks.left_eye, 0.07 * HEIGHT, 0.05 * HEIGHT)
        means.append(luma(eye).mean())
        whites.append(int((eye.min(axis=2) > 200).sum()))
    assert means[0] < means[2] - 20
    assert whites[0] == 0 < whites[1] < whites[2]


def brow_row(frame: np.ndarray, marks: FaceLandmarks, dx: float) -> float:
    """Mean row of the dark brow pixels in a thin column ``dx`` px from the left eye centre, between eye and hair."""
    x, y = marks.left_eye
    column = luma(frame[int(y - 0.195 * HEIGHT) : int(y - 0.06 * HEIGHT), int(x + dx) - 1 : int(x + dx) + 2])
    rows = np.nonzero(column < 0.5 * column.max())[0]
    return float(rows.mean())


def test_brow_raise_moves_the_brows_up():
    rows = [brow_row(*render(FaceCues(brow_raise=amount)), dx=0.0) for amount in (-1.0, 0.0, 1.0)]
    assert rows[0] - rows[1] > 0.03 * HEIGHT and rows[1] - rows[2] > 0.03 * HEIGHT


def test_brow_tilt_moves_the_inner_ends():
    inner = 0.05 * HEIGHT  # towards the nose from the left eye
    sad = brow_row(*render(FaceCues(brow_tilt=1.0)), dx=inner)
    angry = brow_row(*render(FaceCues(brow_tilt=-1.0)), dx=inner)
    assert angry - sad > 0.04 * HEIGHT


def test_nose_wrinkle_darkens_the_bridge():
    plain, marks = render()
    wrinkled, _ = render(FaceCues(nose_wrinkle=1.0))
    bridge_y = (marks.left_eye[1] + marks.nose[1]) / 2
    before = luma(region(plain, marks.nose[0], bridge_y, 0.05 * HEIGHT, 0.04 * HEIGHT)).mean()
    after = luma(region(wrinkled, marks.nose[0], bridge_y, 0.05 * HEIGHT, 0.04 * HEIGHT)).mean()
    assert before - after > 15


def crop48(frame: np.ndarray, marks: FaceLandmarks) -> np.ndarray:
    x0, y0, x1, y1 = marks.box
    side = 1.25 * (y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    box = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
    image = Image.fromarray(frame).resize((48, 48), Image.Resampling.BILINEAR, box=box)
    return np.asarray(image).astype(float)


@pytest.mark.parametrize("look", LOOKS)
def test_expressions_stay_apart_at_48_pixels(look):
    crops = {name: crop48(*render(cues, look, height=80.0)) for name, cues in EXPRESSIONS.items()}
    names = list(crops)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            changed = np.abs(crops[a] - crops[b]).max(axis=2) > 20
            assert changed.sum() >= 10, f"{a} and {b} differ in only {changed.sum()} pixels at 48×48"


# --- edges of the frame, determinism ------------------------------------------------------------------------------


@pytest.mark.parametrize("center", [(5.0, 5.0), (235.0, 100.0), (120.0, 215.0), (-30.0, 50.0), (400.0, -200.0)])
def test_faces_partly_or_wholly_outside_the_frame(center):
    frame, marks = render(EXPRESSIONS["happiness"], LOOKS[1], roll=0.2, center=center)
    x0, y0, x1, y1 = marks.box
    assert (x0 + x1) / 2 == pytest.approx(center[0]) and (y0 + y1) / 2 == pytest.approx(center[1])
    inside = x1 > 0 and y1 > 0 and x0 < 240 and y0 < 220
    assert (frame != 128).any() == inside


def test_same_inputs_give_the_same_pixels():
    first, marks = render(EXPRESSIONS["fear"], LOOKS[1], roll=0.13)
    second, again = render(EXPRESSIONS["fear"], LOOKS[1], roll=0.13)
    np.testing.assert_array_equal(first, second)
    assert marks == again


def test_random_looks_are_reproducible_and_varied():
    looks = [SubjectLook.random(np.random.default_rng(seed)) for seed in range(40)]
    assert looks[:5] == [SubjectLook.random(np.random.default_rng(seed)) for seed in range(5)]
    assert len(set(looks)) == 40
    assert {look.hair_style for look in looks} == set(HAIR_STYLES)
    assert any(look.glasses for look in looks) and not all(look.glasses for look in looks)
    assert all(1.15 <= look.aspect <= 1.45 and 0.35 <= look.eye_spacing <= 0.45 for look in looks)
    for look in looks[:10]:
        render(EXPRESSIONS["surprise"], look)


def test_background_is_reproducible_textured_and_sized():
    first = make_background(90, 160, np.random.default_rng(7))
    again = make_background(90, 160, np.random.default_rng(7))
    other = make_background(90, 160, np.random.default_rng(8))
    assert first.shape == (90, 160, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert luma(first).std() > 3


# --- validation ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CUE_RANGES))
def test_cues_out_of_range_are_refused(name):
    high = CUE_RANGES[name][1]
    with pytest.raises(ValueError, match=rf"FaceCues\.{name} must be a number in"):
        FaceCues(**{name: high + 0.5})
    with pytest.raises(ValueError, match=rf"FaceCues\.{name}.*got nan"):
        FaceCues(**{name: float("nan")})


def test_clipped_cues():
    cues = FaceCues.clipped(mouth_curve=1.7, mouth_open=-0.2, brow_tilt=0.3)
    assert (cues.mouth_curve, cues.mouth_open, cues.brow_tilt) == (1.0, 0.0, 0.3)
    with pytest.raises(ValueError, match="no cue 'mouth_curv'; did you mean 'mouth_curve'"):
        FaceCues.clipped(mouth_curv=0.5)


def test_bad_looks_are_refused():
    with pytest.raises(ValueError, match="hair_style must be one of .* got 'shrot'; did you mean 'short'"):
        SubjectLook(skin=(1, 2, 3), hair=(1, 2, 3), hair_style="shrot")
    with pytest.raises(ValueError, match=r"SubjectLook\.skin must be three integers in \[0, 255\]"):
        SubjectLook(skin=(1, 2, 300), hair=(1, 2, 3))
    with pytest.raises(ValueError, match=r"SubjectLook\.aspect must be a number in \[1.0, 1.8\]"):
        SubjectLook(skin=(1, 2, 3), hair=(1, 2, 3), aspect=3.0)


def test_bad_frames_and_sizes_are_refused():
    with pytest.raises(ValueError, match="frame must be an HxWx3 uint8 RGB array; got float64"):
        draw_face(np.zeros((50, 50, 3)), (25, 25), 30.0, 0.0, FaceCues(), LOOK)
    with pytest.raises(ValueError, match="height must be a positive number"):
        draw_face(np.zeros((50, 50, 3), np.uint8), (25, 25), 0.0, 0.0, FaceCues(), LOOK)
    with pytest.raises(ValueError, match="height and width must be positive"):
        make_background(0, 10, np.random.default_rng(0))
