"""From a detected face to an aligned crop, and which detected face belongs to a track.

A crop is a square of ``margin`` × the face box's height, centred on the box, rotated so that the eyes are level
(the organizers' ``cropped_aligned`` convention; the synthetic generator cuts its crops the same way), resized to
``size`` pixels. Which face is the track's: for ``NAME_left`` / ``NAME_right`` the left- or right-most of the two
largest faces (one face alone: by the side of the frame it is on, or by overlap with the track's previous face);
for a one-person track the face overlapping the previous one most, else the largest.
"""

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from harness.faces.detector import Faces

CONTINUITY_IOU = 0.3  # a face overlapping the track's previous face this much is the same person
RIVAL_AREA = 0.5  # a second face at least this large (relative to the chosen one) makes a one-person frame ambiguous


@dataclass(frozen=True)
class FacePosition:
    """One face: its box (x0, y0, x1, y1) and its eye centres, in frame pixels."""

    box: tuple[float, float, float, float]
    left_eye: tuple[float, float]  # the image-left eye
    right_eye: tuple[float, float]

    @classmethod
    def from_faces(cls, faces: Faces, index: int) -> "FacePosition":
        points = faces.points[index]
        return cls(
            tuple(float(v) for v in faces.boxes[index]),  # type: ignore[arg-type]
            (float(points[0, 0]), float(points[0, 1])),
            (float(points[1, 0]), float(points[1, 1])),
        )


def crop_matrix(face: FacePosition, size: int, margin: float) -> np.ndarray:
    """The 2×3 affine map from crop pixels (u, v, 1) to frame pixels (x, y) of :func:`aligned_crop`."""
    (lx, ly), (rx, ry) = face.left_eye, face.right_eye
    angle = math.atan2(ry - ly, rx - lx)
    x0, y0, x1, y1 = face.box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    scale = margin * max(y1 - y0, 1.0) / size
    cos, sin = scale * math.cos(angle), scale * math.sin(angle)
    half = size / 2
    return np.array([[cos, -sin, cx - half * (cos - sin)], [sin, cos, cy - half * (sin + cos)]])


def to_crop(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Frame-pixel points (n, 2) → their crop-pixel positions under ``matrix`` (the inverse map)."""
    linear, offset = matrix[:, :2], matrix[:, 2]
    return (np.asarray(points, float) - offset) @ np.linalg.inv(linear).T


def aligned_crop(image: Image.Image, face: FacePosition, size: int, margin: float) -> Image.Image:
    """The ``size``×``size`` crop of ``face``: centred on its box, eyes level, ``margin`` × box height wide."""
    matrix = crop_matrix(face, size, margin)
    return image.transform((size, size), Image.Transform.AFFINE, tuple(matrix.ravel()), Image.Resampling.BILINEAR)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes ``a`` (n, 4) with one box ``b`` (4,)."""
    a = np.asarray(a, float).reshape(-1, 4)
    inter_w = np.clip(np.minimum(a[:, 2], b[2]) - np.maximum(a[:, 0], b[0]), 0, None)
    inter_h = np.clip(np.minimum(a[:, 3], b[3]) - np.maximum(a[:, 1], b[1]), 0, None)
    inter = inter_w * inter_h
    areas = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    union = areas + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def _areas(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


@dataclass(frozen=True)
class Pick:
    """The face chosen for a track in one frame (None: none of them), and whether another face competed."""

    index: int | None
    ambiguous: bool = False


def pick_face(faces: Faces, side: str | None, frame_width: int, previous: FacePosition | None) -> Pick:
    """Which of ``faces`` is the track's: ``side`` is "left", "right" or None (a one-person track)."""
    if not len(faces):
        return Pick(None)
    boxes = faces.boxes
    areas = _areas(boxes)
    if side is None:
        index = int(np.argmax(areas))
        if previous is not None:
            overlap = iou(boxes, np.asarray(previous.box))
            if overlap.max() >= CONTINUITY_IOU:
                index = int(np.argmax(overlap))
        rivals = np.delete(areas, index) >= RIVAL_AREA * areas[index]
        return Pick(index, bool(rivals.any()))
    centres = (boxes[:, 0] + boxes[:, 2]) / 2
    if len(faces) >= 2:
        two = np.argsort(-areas, kind="stable")[:2]
        ordered = two[np.argsort(centres[two], kind="stable")]
        return Pick(int(ordered[0] if side == "left" else ordered[1]), len(faces) > 2)
    if previous is not None and iou(boxes, np.asarray(previous.box))[0] >= CONTINUITY_IOU:
        return Pick(0)
    on_left = centres[0] < frame_width / 2
    return Pick(0 if on_left == (side == "left") else None)


def track_side(track: str) -> str | None:
    """ "left" / "right" for ``NAME_left`` / ``NAME_right``, None for a one-person track."""
    for side in ("left", "right"):
        if track.endswith(f"_{side}"):
            return side
    return None
