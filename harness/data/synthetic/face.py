"""Procedural face whose visible features follow per-frame expression cues, for the synthetic Aff-Wild2.

The synthetic dataset must let tiny CNNs learn valence, arousal and the eight ABAW expressions from 112×112 crops
(and from those crops shrunk to 48×48), so every cue moves a high-contrast shape by several percent of the face
height: mouth corners (±8 % at ``mouth_curve`` = ±1), lip gap, eyelids, thick brows, nose wrinkles, a smirk.

Drawing is vectorised numpy on the face's bounding patch only. Each pixel gets a layer id (hair, skin, lid, iris,
lip, ...) painted back to front, each feature inside its own small window of the patch; one palette lookup times a
lighting map then gives the colours. ``draw_face`` uses no randomness: the same inputs give the same pixels.

Geometry is in face units, fractions of the face oval height, in the face's own upright frame: x towards the image
right, y down, origin at the oval centre. ``roll`` rotates that frame about ``center``; positive roll turns the face
clockwise on screen (the top of the head leans to the image right).
"""

import difflib
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["CUE_RANGES", "HAIR_STYLES", "FaceCues", "FaceLandmarks", "SubjectLook", "draw_face", "make_background"]

HAIR_STYLES = ("bald", "short", "fringe", "long")
CUE_RANGES = {
    "mouth_curve": (-1.0, 1.0),
    "mouth_open": (0.0, 1.0),
    "eye_open": (0.0, 1.0),
    "brow_raise": (-1.0, 1.0),
    "brow_tilt": (-1.0, 1.0),
    "nose_wrinkle": (0.0, 1.0),
    "mouth_asym": (-1.0, 1.0),
}

# layer ids, painted back to front; 0 leaves the frame pixel untouched
(_BG, _HAIR, _EAR, _SKIN, _CHEEK, _BEARD, _SHADOW, _LINE, _NOSTRIL, _LID, _SCLERA, _IRIS, _PUPIL, _GLINT, _LASH,
 _GLASSES, _BROW, _LIP, _MOUTH, _TEETH) = range(20)  # fmt: skip

# face layout in face units (fractions of the oval height)
_EYE_Y = -0.055  # eye centres
_MOUTH_Y = 0.25  # mouth centre at rest
_NOSE_Y = 0.085  # nose tip

_SKIN_TONES = np.array(
    [(255, 224, 196), (241, 194, 160), (224, 172, 130), (198, 140, 100), (160, 105, 70), (118, 78, 52), (86, 56, 40)],
    dtype=float,
)
_HAIR_COLOURS = np.array(
    [(24, 20, 20), (58, 40, 28), (102, 68, 40), (128, 60, 30), (200, 165, 105), (150, 146, 140), (222, 210, 180)],
    dtype=float,
)
_HAIR_WEIGHTS = np.array([0.3, 0.25, 0.15, 0.07, 0.1, 0.08, 0.05])
_IRIS_COLOURS = np.array([(88, 55, 30), (50, 34, 24), (70, 110, 160), (80, 120, 80), (120, 95, 50)], dtype=float)


def _check_range(owner: str, name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:  # NaN fails too
        raise ValueError(f"{owner}.{name} must be a number in [{low}, {high}]; got {value!r}")


@dataclass(frozen=True)
class FaceCues:
    """One frame's expression parameters; the label-to-cue mapping lives with the signal generator."""

    mouth_curve: float = 0.0  # -1 frown .. +1 smile (valence)
    mouth_open: float = 0.0  # 0 closed .. 1 wide open (arousal, surprise, fear)
    eye_open: float = 0.6  # 0 closed (blink) .. 1 wide (arousal, surprise, fear)
    brow_raise: float = 0.0  # -1 lowered .. +1 raised (surprise, fear up; anger down)
    brow_tilt: float = 0.0  # -1 inner ends down (anger) .. +1 inner ends up (sadness, fear)
    nose_wrinkle: float = 0.0  # 0 .. 1 (disgust)
    mouth_asym: float = 0.0  # -1 .. 1 one-sided smirk, positive raises the image-right corner ("Other")

    def __post_init__(self) -> None:
        for name, (low, high) in CUE_RANGES.items():
            _check_range("FaceCues", name, getattr(self, name), low, high)

    @classmethod
    def clipped(cls, **values: float) -> "FaceCues":
        """Cues with each value clipped into its range, for mappings that add noise to label-driven values."""
        for name in values:
            if name not in CUE_RANGES:
                close = difflib.get_close_matches(name, CUE_RANGES, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"FaceCues has no cue {name!r}{hint} Cues: {', '.join(CUE_RANGES)}")
        return cls(**{name: float(np.clip(value, *CUE_RANGES[name])) for name, value in values.items()})


@dataclass(frozen=True)
class SubjectLook:
    """One person's constant appearance, so that subjects differ the way Aff-Wild2's people do."""

    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    aspect: float = 1.3  # face oval height / width
    eye_spacing: float = 0.4  # distance between eye centres / face width
    glasses: bool = False
    hair_style: str = "short"  # one of HAIR_STYLES
    beard: bool = False
    iris: tuple[int, int, int] = (88, 55, 30)
    lips: tuple[int, int, int] = (180, 90, 90)
    mouth_width: float = 0.42  # mouth width at rest / face width
    brow_weight: float = 1.0  # brow thickness factor
    light: float = 0.0  # horizontal light direction: -1 from the image left .. +1 from the image right

    def __post_init__(self) -> None:
        for name in ("skin", "hair", "iris", "lips"):
            colour = getattr(self, name)
            if len(colour) != 3 or not all(isinstance(c, int | np.integer) and 0 <= c <= 255 for c in colour):
                raise ValueError(f"SubjectLook.{name} must be three integers in [0, 255] (RGB); got {colour!r}")
        if self.hair_style not in HAIR_STYLES:
            close = difflib.get_close_matches(str(self.hair_style), HAIR_STYLES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"SubjectLook.hair_style must be one of {HAIR_STYLES}; got {self.hair_style!r}{hint}")
        _check_range("SubjectLook", "aspect", self.aspect, 1.0, 1.8)
        _check_range("SubjectLook", "eye_spacing", self.eye_spacing, 0.25, 0.55)
        _check_range("SubjectLook", "mouth_width", self.mouth_width, 0.3, 0.6)
        _check_range("SubjectLook", "brow_weight", self.brow_weight, 0.5, 1.6)
        _check_range("SubjectLook", "light", self.light, -1.0, 1.0)

    @classmethod
    def random(cls, rng: np.random.Generator) -> "SubjectLook":
        """A plausible random person; the same generator state gives the same look."""
        tone = rng.uniform(0, len(_SKIN_TONES) - 1)
        low = int(tone)
        high = min(low + 1, len(_SKIN_TONES) - 1)
        skin = _SKIN_TONES[low] + (tone - low) * (_SKIN_TONES[high] - _SKIN_TONES[low]) + rng.normal(0, 5, 3)
        hair = _HAIR_COLOURS[rng.choice(len(_HAIR_COLOURS), p=_HAIR_WEIGHTS)] * rng.uniform(0.85, 1.1)
        iris = _IRIS_COLOURS[rng.integers(len(_IRIS_COLOURS))]
        lips = skin * np.array([0.82, 0.5, 0.52]) * rng.uniform(0.85, 1.0) + np.array([25, 0, 0])
        hair_style = HAIR_STYLES[rng.choice(len(HAIR_STYLES), p=[0.1, 0.45, 0.2, 0.25])]
        return cls(
            skin=_rgb(skin),
            hair=_rgb(hair),
            aspect=float(rng.uniform(1.15, 1.45)),
            eye_spacing=float(rng.uniform(0.35, 0.45)),
            glasses=bool(rng.random() < 0.25),
            hair_style=hair_style,
            beard=bool(rng.random() < 0.15),
            iris=_rgb(iris),
            lips=_rgb(lips),
            mouth_width=float(rng.uniform(0.38, 0.48)),
            brow_weight=float(rng.uniform(0.85, 1.25)),
            light=float(rng.uniform(-1, 1)),
        )


def _rgb(values: np.ndarray) -> tuple[int, int, int]:
    r, g, b = np.clip(np.rint(values), 0, 255).astype(int).tolist()
    return r, g, b


@dataclass(frozen=True)
class FaceLandmarks:
    """Where the drawn face is, in frame pixels (pixel centres at integer coordinates), RetinaFace-style."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1 around the head (oval, hair, ears), centred on `center`
    left_eye: tuple[float, float]  # image-left eye centre
    right_eye: tuple[float, float]
    nose: tuple[float, float]  # nose tip
    mouth_left: tuple[float, float]  # image-left mouth corner
    mouth_right: tuple[float, float]

    @property
    def points(self) -> np.ndarray:
        """The five landmarks as a (5, 2) array: left eye, right eye, nose, left and right mouth corners."""
        return np.array([self.left_eye, self.right_eye, self.nose, self.mouth_left, self.mouth_right])


class _Patch:
    """Face-unit coordinates and layer ids over the frame pixels the head can cover; features paint windows of it."""

    def __init__(self, center: tuple[float, float], height: float, roll: float, outer: tuple, bounds: tuple) -> None:
        self.cx, self.cy, self.h = center[0], center[1], height
        self.cos, self.sin = math.cos(roll), math.sin(roll)
        self.x0, self.y0, x1, y1 = bounds
        dx = (np.arange(self.x0, x1, dtype=np.float32) - self.cx) / height
        dy = (np.arange(self.y0, y1, dtype=np.float32) - self.cy) / height
        self.x = self.cos * dx[None, :] + self.sin * dy[:, None]
        self.y = -self.sin * dx[None, :] + self.cos * dy[:, None]
        self.outer = (self.x * (1.0 / outer[0])) ** 2 + (self.y * (1.0 / outer[1])) ** 2  # <= 1 inside the head
        self.layer = np.zeros(self.x.shape, dtype=np.uint8)

    def window(self, xa: float, xb: float, ya: float, yb: float):
        """(x, y, layer) views over the pixels that hold the face-unit rectangle [xa, xb] × [ya, yb], or None."""
        h, cos, sin = self.h, self.cos, self.sin
        px = [self.cx - self.x0 + h * (cos * u - sin * v) for u in (xa, xb) for v in (ya, yb)]
        py = [self.cy - self.y0 + h * (sin * u + cos * v) for u in (xa, xb) for v in (ya, yb)]
        rows, cols = self.layer.shape
        c0, c1 = max(0, math.floor(min(px))), min(cols, math.ceil(max(px)) + 1)
        r0, r1 = max(0, math.floor(min(py))), min(rows, math.ceil(max(py)) + 1)
        if c1 <= c0 or r1 <= r0:
            return None
        return self.x[r0:r1, c0:c1], self.y[r0:r1, c0:c1], self.layer[r0:r1, c0:c1]


def draw_face(
    frame: np.ndarray,
    center: tuple[float, float],
    height: float,
    roll: float,
    cues: FaceCues,
    look: SubjectLook,
) -> FaceLandmarks:
    """Draw one face into ``frame`` (HxWx3 uint8 RGB, in place) and return where it landed.

    ``height`` is the face oval's height in pixels, ``roll`` the in-plane head rotation in radians. Only pixels
    inside the returned box change; parts outside the frame are clipped but the landmarks are still reported.
    """
    if not (isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3):
        got = f"{frame.dtype} array of shape {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise ValueError(f"draw_face: frame must be an HxWx3 uint8 RGB array; got {got}")
    if not (math.isfinite(height) and height > 0 and math.isfinite(roll)):
        raise ValueError(f"draw_face: height must be a positive number and roll finite; got {height!r}, {roll!r}")
    cx, cy = float(center[0]), float(center[1])
    cos, sin = math.cos(roll), math.sin(roll)
    half_w = 0.5 / look.aspect
    outer_w = half_w + (0.075 if look.hair_style == "long" else 0.05)
    outer_h = 0.5 + (0.005 if look.hair_style == "bald" else 0.045)
    ext_x = height * math.hypot(outer_w * cos, outer_h * sin)
    ext_y = height * math.hypot(outer_w * sin, outer_h * cos)
    box = (cx - ext_x, cy - ext_y, cx + ext_x, cy + ext_y)

    mouth = _mouth_shape(cues, look, half_w)
    eye_dx = look.eye_spacing * half_w

    def at(x: float, y: float) -> tuple[float, float]:
        return cx + height * (cos * x - sin * y), cy + height * (sin * x + cos * y)

    marks = FaceLandmarks(
        box=box,
        left_eye=at(-eye_dx, _EYE_Y),
        right_eye=at(eye_dx, _EYE_Y),
        nose=at(0.0, _NOSE_Y),
        mouth_left=at(mouth.shift - mouth.half, mouth.corner_y[0]),
        mouth_right=at(mouth.shift + mouth.half, mouth.corner_y[1]),
    )
    rows, cols = frame.shape[:2]
    bounds = (
        max(0, math.ceil(box[0])),
        max(0, math.ceil(box[1])),
        min(cols, math.floor(box[2]) + 1),
        min(rows, math.floor(box[3]) + 1),
    )
    if bounds[2] <= bounds[0] or bounds[3] <= bounds[1]:
        return marks
    patch = _Patch((cx, cy), height, roll, (outer_w, outer_h), bounds)
    _draw_head(patch, look, half_w, outer_w, outer_h)
    _draw_cheeks_and_beard(patch, look, mouth, half_w, eye_dx)
    _draw_nose(patch, cues, look, mouth)
    for side in (-1.0, 1.0):
        _draw_eye(patch, cues, side * eye_dx)
    if look.glasses:
        _draw_glasses(patch, eye_dx, half_w)
    _draw_frown(patch, cues)
    for side in (-1.0, 1.0):
        _draw_brow(patch, cues, look, side, eye_dx)
    _draw_mouth(patch, mouth)

    layer = patch.layer
    layer[patch.outer > 1.0] = _BG  # nothing leaves the head's ellipse, hence the box
    drawn = layer != _BG
    ids = layer[drawn]
    shade = _light(patch.x[drawn] * (1.0 / outer_w), patch.y[drawn] * (1.0 / outer_h), patch.outer[drawn], look.light)
    hair = ids == _HAIR
    if hair.any():  # strands: a cheap wavy stripe texture
        shade[hair] *= 1.0 + 0.12 * np.sin((70.0 / outer_w) * patch.x[drawn][hair] + 40.0 * patch.y[drawn][hair] ** 2)
    colours = np.take(_palette(look), ids, axis=0)
    colours *= shade[:, None]
    _put(frame[bounds[1] : bounds[3], bounds[0] : bounds[2]], drawn, np.minimum(colours, 255.0).astype(np.uint8))
    return marks


_PIXEL = np.dtype((np.void, 3))


def _put(target: np.ndarray, mask: np.ndarray, colours: np.ndarray) -> None:
    """``target[mask] = colours``, moving whole 3-byte pixels (tens of times faster than per-channel indexing)."""
    try:
        pixels = target.view(_PIXEL)[..., 0]
    except ValueError:  # channels not contiguous in memory
        target[mask] = colours
        return
    pixels[mask] = colours.view(_PIXEL)[:, 0]


def _light(x: np.ndarray, y: np.ndarray, r2: np.ndarray, light: float) -> np.ndarray:
    """Lambert shading of the head as an ellipsoid (unit coordinates, r2 = x² + y²), lit from the front, above,
    and ``light``'s side."""
    lx, ly, lz = 0.5 * light, -0.35, 0.8
    norm = math.sqrt(lx * lx + ly * ly + lz * lz)
    z = np.sqrt(np.maximum(1.0 - r2, 0.0))
    return 0.5 + (0.55 / norm) * np.maximum(lx * x + ly * y + lz * z, 0.0)


@lru_cache(maxsize=512)
def _palette(look: SubjectLook) -> np.ndarray:
    """RGB per layer id; brows and lips are kept darker than the skin whatever their colours, so they show."""
    skin = np.array(look.skin, dtype=np.float32)
    hair = np.array(look.hair, dtype=np.float32)
    lips = np.array(look.lips, dtype=np.float32)
    luma = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    skin_luma = float(skin @ luma)
    brow = hair * min(0.85, 0.45 * skin_luma / max(float(hair @ luma), 1.0))
    lips *= min(1.0, 0.75 * skin_luma / max(float(lips @ luma), 1.0))
    table = np.zeros((20, 3), dtype=np.float32)
    table[_HAIR] = hair
    table[_EAR] = skin * 0.9
    table[_SKIN] = skin
    table[_CHEEK] = skin * np.array([1.02, 0.9, 0.9])
    table[_BEARD] = 0.35 * skin + 0.65 * hair * 0.8
    table[_SHADOW] = skin * 0.8
    table[_LINE] = skin * 0.5
    table[_NOSTRIL] = skin * 0.3
    table[_LID] = skin * 0.86
    table[_SCLERA] = (245, 243, 238)
    table[_IRIS] = look.iris
    table[_PUPIL] = (12, 10, 10)
    table[_GLINT] = (255, 255, 255)
    table[_LASH] = (22, 18, 18)
    table[_GLASSES] = (30, 30, 36)
    table[_BROW] = brow
    table[_LIP] = lips
    table[_MOUTH] = (62, 16, 22)
    table[_TEETH] = (240, 236, 225)
    return table


@dataclass(frozen=True)
class _Mouth:
    """Mouth geometry of one frame, shared by the drawing and the corner landmarks."""

    half: float  # half width
    shift: float  # sideways shift of the centre (smirk)
    centre_y: float
    curve: tuple[float, float]  # corner lift of the image-left and image-right halves
    gap: float  # lip gap at the centre
    lift: float  # upper lip raised (disgust)

    @property
    def corner_y(self) -> tuple[float, float]:
        return self.centre_y - 0.08 * self.curve[0], self.centre_y - 0.08 * self.curve[1]


def _mouth_shape(cues: FaceCues, look: SubjectLook, half_w: float) -> _Mouth:
    """Where the cues put the mouth: a smile widens it and lifts the corners, opening narrows and drops it."""
    smile = max(cues.mouth_curve, 0.0)
    return _Mouth(
        half=look.mouth_width * half_w * (1.0 + 0.14 * smile - 0.12 * cues.mouth_open),
        shift=0.035 * cues.mouth_asym,
        centre_y=_MOUTH_Y + 0.015 * cues.mouth_curve + 0.02 * cues.mouth_open,
        curve=(  # a smirk lifts one corner hard and lets the other sag a little
            cues.mouth_curve + 1.7 * max(-cues.mouth_asym, 0.0) - 0.35 * max(cues.mouth_asym, 0.0),
            cues.mouth_curve + 1.7 * max(cues.mouth_asym, 0.0) - 0.35 * max(-cues.mouth_asym, 0.0),
        ),
        gap=0.15 * cues.mouth_open,
        lift=0.02 * cues.nose_wrinkle,
    )


def _draw_head(patch: _Patch, look: SubjectLook, half_w: float, outer_w: float, outer_h: float) -> None:
    """Hair behind the head, ears, the skin oval (narrowing to the chin), then hair over the forehead."""
    x, y, layer = patch.x, patch.y, patch.layer
    style = look.hair_style
    inside_outer = patch.outer <= 1.0
    if style == "long":
        layer[inside_outer & (y < 0.4)] = _HAIR
    elif style != "bald":
        layer[inside_outer & (y < -0.12)] = _HAIR
    if style != "long":
        for side in (-1.0, 1.0):
            view = patch.window(side * half_w - 0.06, side * half_w + 0.06, -0.1, 0.1)
            if view is not None:
                ex, ey, el = view
                el[((ex - side * half_w * 0.97) / 0.05) ** 2 + (ey / 0.085) ** 2 <= 1.0] = _EAR
    jaw = 1.0 - 0.64 * np.maximum(y, 0.0) ** 2  # the oval narrows by up to 16 % towards the chin
    layer[(x / (half_w * jaw)) ** 2 + 4.0 * y * y <= 1.0] = _SKIN
    if style == "bald":
        return
    view = patch.window(-outer_w, outer_w, -outer_h, 0.32)
    if view is None:
        return
    hx, hy, hl = view
    on_face = hl == _SKIN
    if style == "fringe":
        front = hy < -0.245 + 0.012 * np.sin(hx * 70.0)
        sides = (np.abs(hx) > half_w * 0.87) & (hy < 0.05)
    elif style == "long":
        front = hy < -0.27 + 1.1 * hx * hx
        sides = (np.abs(hx) > half_w * 0.84) & (hy < 0.32)
    else:
        front = hy < -0.29 + 1.0 * hx * hx
        sides = (np.abs(hx) > half_w * 0.88) & (hy < 0.0)
    hl[on_face & (front | sides)] = _HAIR


def _draw_cheeks_and_beard(patch: _Patch, look: SubjectLook, mouth: _Mouth, half_w: float, eye_dx: float) -> None:
    """Cheeks that rise and swell with their side's mouth corner; an optional short beard over jaw and chin."""
    for index, side in enumerate((-1.0, 1.0)):
        lift = min(max(mouth.curve[index], 0.0), 1.0)
        cy = 0.09 - 0.035 * lift
        rx, ry = 0.06 * (1 + 0.3 * lift), 0.04 * (1 + 0.3 * lift)
        view = patch.window(side * (eye_dx + 0.01) - rx, side * (eye_dx + 0.01) + rx, cy - ry, cy + ry)
        if view is not None:
            x, y, layer = view
            inside = ((x - side * (eye_dx + 0.01)) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0
            layer[inside & (layer == _SKIN)] = _CHEEK
    if look.beard:  # jaw, chin and sideburns, rising towards the ears; the lips are drawn over it
        view = patch.window(-half_w, half_w, -0.08, 0.5)
        if view is not None:
            x, y, layer = view
            layer[(layer == _SKIN) & (y > 0.19 - 0.26 * (x / half_w) ** 2)] = _BEARD


def _draw_nose(patch: _Patch, cues: FaceCues, look: SubjectLook, mouth: _Mouth) -> None:
    """Shaded bridge side, tip underside, nostrils; wrinkles and nasolabial folds for disgust (and smiles)."""
    wrinkle = cues.nose_wrinkle
    view = patch.window(-0.25, 0.25, _EYE_Y, 0.25)
    if view is None:
        return
    x, y, layer = view
    shadow_side = 1.0 if look.light <= 0 else -1.0
    bridge = (np.abs(x - shadow_side * 0.035) < 0.011) & (y > _EYE_Y + 0.03) & (y < _NOSE_Y - 0.005)
    under_tip = (y > _NOSE_Y) & ((x / 0.058) ** 2 + ((y - _NOSE_Y) / 0.032) ** 2 <= 1.0)
    layer[bridge | under_tip] = _SHADOW
    nostril_w = 0.017 + 0.008 * wrinkle
    for side in (-1.0, 1.0):
        layer[((x - side * 0.028) / nostril_w) ** 2 + ((y - _NOSE_Y - 0.02) / 0.0095) ** 2 <= 1.0] = _NOSTRIL
    if wrinkle > 0.05:
        reach, thick = 0.02 + 0.035 * wrinkle, 0.003 + 0.007 * wrinkle
        for row in (_EYE_Y + 0.035, _EYE_Y + 0.067, _EYE_Y + 0.099):
            layer[(np.abs(y - row - 3.0 * x * x) < thick) & (np.abs(x) < reach)] = _LINE
    top_y, top_x = _NOSE_Y + 0.015, 0.065
    for index, side in enumerate((-1.0, 1.0)):
        fold = max(0.7 * wrinkle, 0.8 * min(max(mouth.curve[index], 0.0), 1.0))
        if fold > 0.1:
            end_x = abs(side * (mouth.half + 0.02) + mouth.shift)
            end_y = mouth.corner_y[index] + 0.025
            q = np.clip((y - top_y) / max(end_y - top_y, 1e-3), 0.0, 1.0)
            line_x = side * (top_x + (end_x - top_x) * np.sqrt(q) + 0.015 * np.sin(np.pi * q))
            on = (np.abs(x - line_x) < 0.004 + 0.008 * fold) & (y > top_y) & (y < end_y)
            layer[on & (layer != _NOSTRIL)] = _LINE


def _draw_eye(patch: _Patch, cues: FaceCues, ex: float) -> None:
    """Upper lid that opens with ``eye_open`` over white, iris and pupil; a thick lash line on the lid edge."""
    width = min(0.085, 0.72 * abs(ex))
    view = patch.window(ex - width * 1.25, ex + width * 1.25, _EYE_Y - 0.1, _EYE_Y + 0.05)
    if view is None:
        return
    x, y, layer = view
    t = (x - ex) / width
    bulge = np.sqrt(np.maximum(1.0 - t * t, 0.0))
    lower = _EYE_Y + (0.03 - 0.012 * max(cues.mouth_curve, 0.0)) * bulge  # a smile pushes the lower lid up
    upper = lower - 0.105 * cues.eye_open * bulge
    socket = ((x - ex) / (width * 1.2)) ** 2 + ((y - _EYE_Y + 0.015) / 0.075) ** 2 <= 1.0
    layer[socket & (y < upper)] = _LID
    opening = (np.abs(t) < 1.0) & (y >= upper) & (y <= lower)
    if cues.eye_open > 0.0:
        layer[opening] = _SCLERA
        iris_y = _EYE_Y + 0.004
        r2 = (x - ex) ** 2 + (y - iris_y) ** 2
        layer[opening & (r2 < 0.037**2)] = _IRIS
        layer[opening & (r2 < 0.016**2)] = _PUPIL
        layer[opening & ((x - ex + 0.012) ** 2 + (y - iris_y + 0.012) ** 2 < 0.0075**2)] = _GLINT
    outer = np.sign(ex) * t  # > 1 beyond the outer corner: the lash line flicks out a little
    lash = (y < upper + 0.004) & (y > upper - 0.02) & (np.abs(t) < 1.0)
    wing = (outer >= 1.0) & (outer < 1.18) & (np.abs(y - _EYE_Y + 0.012 * (outer - 1.0) / 0.18) < 0.01)
    layer[lash | wing] = _LASH
    layer[(np.abs(t) < 0.95) & (y > lower) & (y < lower + 0.008)] = _LINE


def _draw_glasses(patch: _Patch, eye_dx: float, half_w: float) -> None:
    """Rounded-rectangle frames around the eyes, a bridge and the arms towards the ears."""
    gw, gh, thick = min(0.11, eye_dx * 0.95), 0.068, 0.014
    view = patch.window(-half_w, half_w, _EYE_Y - gh - 0.01, _EYE_Y + gh + 0.02)
    if view is None:
        return
    x, y, layer = view
    yc = _EYE_Y + 0.008
    ring = np.zeros(x.shape, dtype=bool)
    for side in (-1.0, 1.0):
        r = (np.abs(x - side * eye_dx) / gw) ** 4 + (np.abs(y - yc) / gh) ** 4
        inner = (np.abs(x - side * eye_dx) / (gw - thick)) ** 4 + (np.abs(y - yc) / (gh - thick)) ** 4
        ring |= (r <= 1.0) & (inner > 1.0)
    bar = np.abs(y - (yc - 0.02)) < thick / 2
    bridge = bar & (np.abs(x) < eye_dx - gw + thick)
    arms = bar & (np.abs(x) > eye_dx + gw - thick) & (np.abs(x) < half_w * 0.98)
    layer[ring | bridge | arms] = _GLASSES


def _draw_brow(patch: _Patch, cues: FaceCues, look: SubjectLook, side: float, eye_dx: float) -> None:
    """Thick brow over one eye: its height follows ``brow_raise``, its inner end's height ``brow_tilt``."""
    width = min(0.085, 0.72 * eye_dx)
    inner, outer = eye_dx - 0.9 * width, eye_dx + 1.2 * width
    base = _EYE_Y - 0.105 - 0.042 * cues.brow_raise
    thick = 0.036 * look.brow_weight
    left, right = sorted((side * (inner - 0.01), side * (outer + 0.01)))
    view = patch.window(left, right, base - 0.09, base + 0.07)
    if view is None:
        return
    x, y, layer = view
    p = (side * x - inner) / (outer - inner)  # 0 at the inner end, 1 at the outer end
    arch = 0.016 * (1.0 + 0.6 * max(cues.brow_raise, 0.0)) * 4.0 * p * (1.0 - p)
    centre = base - cues.brow_tilt * 0.038 * (1.0 - p) + 0.012 * cues.brow_tilt * p - arch
    half_thick = 0.5 * thick * (1.0 - 0.35 * p)
    layer[(p >= 0.0) & (p <= 1.0) & (np.abs(y - centre) < half_thick)] = _BROW


def _draw_frown(patch: _Patch, cues: FaceCues) -> None:
    """Two vertical creases between the brows when they are lowered and knitted (anger)."""
    frown = 0.6 * max(-cues.brow_tilt, 0.0) + 0.4 * max(-cues.brow_raise, 0.0)
    if frown <= 0.3:
        return
    top = _EYE_Y - 0.105 - 0.042 * cues.brow_raise - 0.038 * cues.brow_tilt
    view = patch.window(-0.04, 0.04, top - 0.01, _EYE_Y)
    if view is None:
        return
    x, y, layer = view
    for line_x in (-0.02, 0.02):
        layer[(np.abs(x - line_x) < 0.004 + 0.005 * frown) & (y > top) & (y < _EYE_Y - 0.01)] = _LINE


def _draw_mouth(patch: _Patch, mouth: _Mouth) -> None:
    """Lips around a curved opening: corners lift with the curve, the gap follows ``mouth_open``, teeth show."""
    lift = max(abs(mouth.curve[0]), abs(mouth.curve[1])) * 0.08
    reach, top, bottom = mouth.half + 0.01, mouth.centre_y - lift - 0.07, mouth.centre_y + lift + mouth.gap + 0.06
    view = patch.window(mouth.shift - reach, mouth.shift + reach, top, bottom)
    if view is None:
        return
    x, y, layer = view
    t = (x - mouth.shift) / mouth.half
    inside = np.abs(t) < 1.0
    curve = np.where(t > 0, mouth.curve[1], mouth.curve[0])
    centre = mouth.centre_y - 0.08 * curve * t * t
    round_ = np.sqrt(np.maximum(1.0 - t * t, 0.0))
    gap = np.maximum(mouth.gap * round_**0.8, 0.018 * np.sqrt(round_))
    top_inner = centre - 0.3 * gap - mouth.lift * round_
    bottom_inner = centre + 0.7 * gap
    lips = inside & (y >= top_inner - 0.024 * round_**0.4) & (y <= bottom_inner + 0.032 * round_)
    layer[lips] = _LIP
    cavity = inside & (y > top_inner) & (y < bottom_inner)
    layer[cavity] = _MOUTH
    if mouth.gap > 0.02:
        teeth_depth = np.minimum(0.03, 0.45 * (bottom_inner - top_inner))
        layer[cavity & (y < top_inner + teeth_depth) & (np.abs(t) < 0.8)] = _TEETH
    for corner in (-1.0, 1.0):
        cy = mouth.corner_y[0 if corner < 0 else 1]
        layer[((x - mouth.shift - corner * mouth.half) ** 2 + (y - cy) ** 2) < 0.009**2] = _LINE


def make_background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A static scene (height × width × 3 uint8) for one video: gradient wall, soft blotches, a few flat blocks."""
    if height < 1 or width < 1:
        raise ValueError(f"make_background: height and width must be positive; got {height}×{width}")
    base = rng.uniform(45, 210) + rng.normal(0, 18, size=3)  # muted, mostly greyish indoor colours
    other = np.clip(base + rng.normal(0, 35) + rng.normal(0, 12, size=3), 0, 255)
    angle = rng.uniform(0, 2 * math.pi)
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    ramp = np.clip(0.5 + 0.7 * (math.cos(angle) * (xs - 0.5) + math.sin(angle) * (ys - 0.5)), 0.0, 1.0)
    image = base.astype(np.float32) + (other - base).astype(np.float32) * ramp[..., None]
    image += _upsample(rng.normal(0.0, 16.0, size=(5, 7, 3)).astype(np.float32), height, width)
    for _ in range(int(rng.integers(2, 6))):  # furniture, frames, windows, doors
        w, h = rng.uniform(0.1, 0.45) * width, rng.uniform(0.1, 0.7) * height
        x0, y0 = int(rng.uniform(-0.1, 1.0) * width), int(rng.uniform(-0.1, 1.0) * height)
        colour = (rng.uniform(20, 235) + rng.normal(0, 28, size=3)).astype(np.float32)
        block = image[max(0, y0) : max(0, int(y0 + h)), max(0, x0) : max(0, int(x0 + w))]
        block[...] = 0.25 * block + 0.75 * colour
    return np.clip(image, 0, 255).astype(np.uint8)


def _upsample(small: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear upsampling of a coarse (rows, cols, 3) grid to height × width."""

    def axis(n: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = np.linspace(0.0, n - 1.0, size, dtype=np.float32)
        low = np.minimum(pos.astype(int), n - 2)
        return low, low + 1, (pos - low).astype(np.float32)

    r0, r1, fr = axis(small.shape[0], height)
    c0, c1, fc = axis(small.shape[1], width)
    rows = small[r0] * (1 - fr)[:, None, None] + small[r1] * fr[:, None, None]
    return rows[:, c0] * (1 - fc)[None, :, None] + rows[:, c1] * fc[None, :, None]
