"""RetinaFace (Deng et al., CVPR 2020, arXiv 1905.00641) as the harness runs it: weights, prior boxes, decoding, NMS.

The network is the ``retina-face`` package's own PyTorch port (``retinaface.model.retinaface_pth_model.RetinaFace``:
ResNet-50 v2 backbone, feature pyramid, SSH context modules, class / box / five-landmark heads at strides 32, 16
and 8), fed an (N, H, W, 3) float RGB batch in 0..255. Its published weights are the file ``retinaface.pth`` that the
package keeps in ``$DEEPFACE_HOME/.deepface/weights/`` (``DEEPFACE_HOME`` defaults to the home folder). The package
would download a missing file at first use; the harness never lets it: a missing file is a :class:`FaceError`
saying which file to get and where to put it, and the file is loaded here with ``torch.load(weights_only=True)``.

Decoding follows the original (mxnet) RetinaFace: two square anchors per position and stride, boxes as centre
shifts and log-size ratios of the anchor, landmarks as shifts of the anchor centre in anchor units, then a score
threshold and non-maximum suppression (``torchvision.ops.nms``).
"""

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from harness.errors import HarnessError

WEIGHTS_FILE = "retinaface.pth"
WEIGHTS_URL = "https://github.com/serengil/deepface_models/releases/download/v1.0/retinaface.pth"
HOME_ENV = "DEEPFACE_HOME"
STRIDES = (32, 16, 8)  # the order of the network's outputs
ANCHOR_SCALES = {32: (32.0, 16.0), 16: (8.0, 4.0), 8: (2.0, 1.0)}  # anchor sides are 16 × scale pixels
ANCHOR_BASE = 16.0
ANCHORS_PER_POSITION = 2


class FaceError(HarnessError):
    """Face detection cannot run: weights missing or unreadable, a video unreadable, or a track without faces."""


def weights_path(explicit: Path | None = None) -> Path:
    """The detector weights: ``explicit``, else ``$DEEPFACE_HOME/.deepface/weights/retinaface.pth``."""
    if explicit is not None:
        return Path(explicit).expanduser()
    home = Path(os.environ.get(HOME_ENV) or Path.home())
    return home / ".deepface" / "weights" / WEIGHTS_FILE


def build_network() -> torch.nn.Module:
    """The package's RetinaFace module with random weights (its torch backend; TensorFlow is never imported)."""
    os.environ.setdefault("DEEPFACE_BACKEND_ENGINE", "pytorch")
    try:
        from retinaface.model.retinaface_pth_model import RetinaFace
    except ImportError as error:
        raise FaceError(
            f"the retina-face package (0.0.19) is not installed or incomplete ({error}); run "
            "`pip install -c requirements.lock -e .` in the harness folder"
        ) from error
    return RetinaFace()


def load_network(path: Path | None = None) -> torch.nn.Module:
    """RetinaFace with the weights of ``path`` (default: :func:`weights_path`), in eval mode, on the CPU."""
    path = weights_path(path)
    if not path.is_file():
        raise FaceError(
            f"RetinaFace weights not found at {path}. Get {WEIGHTS_FILE} (the retina-face package's PyTorch weights, "
            f"{WEIGHTS_URL}) on a machine with network access and put it there, or set ${HOME_ENV} to the folder "
            f"holding .deepface/weights/{WEIGHTS_FILE}, or pass --weights FILE; nothing is downloaded at run time"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as error:
        message = f"{path}: not a readable RetinaFace weights file ({error}); fetch {WEIGHTS_URL} again"
        raise FaceError(message) from error
    with torch.device("meta"):  # no random initialisation: every tensor comes from the file
        net = build_network()
    if not isinstance(state, dict):
        raise FaceError(f"{path}: expected a state dict of RetinaFace weights, found a {type(state).__name__}")
    expected, found = set(net.state_dict()), set(state)
    if expected != found:
        missing, unexpected = sorted(expected - found), sorted(found - expected)
        raise FaceError(
            f"{path}: not the retina-face package's RetinaFace weights ({len(missing)} parameters missing, e.g. "
            f"{missing[:2]}; {len(unexpected)} unexpected, e.g. {unexpected[:2]}); fetch {WEIGHTS_URL}"
        )
    # a converted half-precision copy loads as the float32 the detector computes in (``assign`` keeps the file's dtype)
    state = {name: value.float() if value.is_floating_point() else value for name, value in state.items()}
    try:
        net.load_state_dict(state, assign=True)
    except RuntimeError as error:
        raise FaceError(f"{path}: RetinaFace weights of the wrong shapes ({str(error)[:300]})") from error
    return net.eval()


def file_sha256(path: Path) -> str:
    """Content hash of a weights file (part of every store key that depends on the detector)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Faces:
    """The faces found in one frame, best first: boxes (k, 4) x0 y0 x1 y1, scores (k,), points (k, 5, 2).

    Points are in image terms: the image-left eye, the image-right eye, the nose tip, the image-left and
    image-right mouth corners (the package calls the first the person's right eye)."""

    boxes: np.ndarray
    scores: np.ndarray
    points: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> "Faces":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))


def stride_anchors(stride: int) -> torch.Tensor:
    """The (2, 4) anchors of one stride at grid position (0, 0), x0 y0 x1 y1 with inclusive pixel ends."""
    centre = (ANCHOR_BASE - 1) / 2
    rows = []
    for scale in ANCHOR_SCALES[stride]:
        half = (ANCHOR_BASE * scale - 1) / 2
        rows.append([centre - half, centre - half, centre + half, centre + half])
    return torch.tensor(rows, dtype=torch.float32)


def prior_boxes(height: int, width: int, stride: int) -> torch.Tensor:
    """Anchors of a (height × width) feature map, (height·width·2, 4), ordered by row, column, anchor."""
    ys, xs = torch.meshgrid(torch.arange(height) * stride, torch.arange(width) * stride, indexing="ij")
    shifts = torch.stack([xs, ys, xs, ys], dim=-1).float().reshape(-1, 1, 4)
    return (shifts + stride_anchors(stride).reshape(1, ANCHORS_PER_POSITION, 4)).reshape(-1, 4)


def decode_boxes(anchors: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
    """Boxes from (dx, dy, log dw, log dh) relative to the anchors (sizes counted with inclusive ends)."""
    sizes = anchors[:, 2:] - anchors[:, :2] + 1.0
    centres = anchors[:, :2] + 0.5 * (sizes - 1.0)
    new_centres = deltas[:, :2] * sizes + centres
    half = 0.5 * (torch.exp(deltas[:, 2:4]) * sizes - 1.0)
    return torch.cat([new_centres - half, new_centres + half], dim=1)


def decode_points(anchors: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
    """Five landmarks (n, 5, 2) from shifts of the anchor centre, in anchor widths and heights."""
    sizes = anchors[:, 2:] - anchors[:, :2] + 1.0
    centres = anchors[:, :2] + 0.5 * (sizes - 1.0)
    return deltas.reshape(-1, 5, 2) * sizes[:, None, :] + centres[:, None, :]


def decode(
    outputs: list[torch.Tensor],
    image_hw: tuple[int, int],
    scale: float = 1.0,
    threshold: float = 0.9,
    nms_iou: float = 0.4,
) -> list[Faces]:
    """The network's nine outputs of a batch ((N, h, w, C) per stride: class probabilities, box and landmark
    deltas) → the faces of each image, in the pixels of the image before it was resized by ``scale``.

    The whole batch is decoded at once and suppressed by one ``batched_nms`` (each image's boxes among themselves):
    on a GPU a per-image loop waited for the device at every image and stride."""
    from torchvision.ops import batched_nms

    height, width = image_hw
    batch = outputs[0].shape[0]
    images, boxes, scores, points = [], [], [], []
    for level, stride in enumerate(STRIDES):
        probs, box_deltas, point_deltas = (t.float() for t in outputs[3 * level : 3 * level + 3])
        anchors = prior_boxes(probs.shape[1], probs.shape[2], stride).to(probs.device)
        level_scores = probs[..., ANCHORS_PER_POSITION:].reshape(batch, -1)
        image, anchor = torch.nonzero(level_scores >= threshold, as_tuple=True)
        images.append(image)
        scores.append(level_scores[image, anchor])
        boxes.append(decode_boxes(anchors[anchor], box_deltas.reshape(batch, -1, 4)[image, anchor]))
        points.append(decode_points(anchors[anchor], point_deltas.reshape(batch, -1, 10)[image, anchor]))
    image, box, score, point = (torch.cat(column) for column in (images, boxes, scores, points))
    box[:, 0::2] = box[:, 0::2].clamp(0, width - 1)
    box[:, 1::2] = box[:, 1::2].clamp(0, height - 1)
    keep = batched_nms(box, score, image, nms_iou)  # sorted by decreasing score
    image = image[keep].cpu().numpy()
    box = (box[keep] / scale).cpu().numpy().astype(np.float32)
    score = score[keep].cpu().numpy().astype(np.float32)
    point = (point[keep] / scale).cpu().numpy().astype(np.float32)
    return [Faces(box[mine], score[mine], point[mine]) for mine in (image == index for index in range(batch))]


class Detector:
    """RetinaFace on batches of RGB frames: resize so the longer side is ``detect_size``, forward, decode."""

    def __init__(
        self, net: torch.nn.Module, detect_size: int = 640, threshold: float = 0.9, nms_iou: float = 0.4
    ) -> None:
        self.net = net
        self.detect_size = detect_size
        self.threshold = threshold
        self.nms_iou = nms_iou

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def prepare(self, frames: np.ndarray) -> tuple[torch.Tensor, float]:
        """(N, H, W, 3) uint8 RGB frames → the network's (N, h, w, 3) float input and the resize factor."""
        height, width = frames.shape[1:3]
        scale = self.detect_size / max(height, width)
        pixels = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device).permute(0, 3, 1, 2).float()
        if abs(scale - 1.0) > 1e-6:
            size = (max(1, round(height * scale)), max(1, round(width * scale)))
            pixels = F.interpolate(pixels, size=size, mode="bilinear", align_corners=False, antialias=scale < 1)
        return pixels.permute(0, 2, 3, 1).contiguous(), scale

    @torch.inference_mode()
    def forward(self, pixels: torch.Tensor) -> list[torch.Tensor]:
        """The raw forward pass (what the benchmark compares the whole pipeline with)."""
        return self.net(pixels)

    def detect(self, frames: np.ndarray) -> list[Faces]:
        """Faces of each frame of an (N, H, W, 3) uint8 RGB batch, in frame pixels."""
        pixels, scale = self.prepare(frames)
        outputs = self.forward(pixels)
        return decode(outputs, pixels.shape[1:3], scale, self.threshold, self.nms_iou)
