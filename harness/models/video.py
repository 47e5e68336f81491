"""Static video kind: an ImageNet backbone on single face crops (SUN team, ABAW 2024, arXiv 2403.12609).

Backbone (timm; classifier removed) → Dropout → Linear(→256) → BatchNorm → Tanh, the 256-d frame **embedding**
that later kinds reuse, → Linear(256→2) + Tanh for valence/arousal, Linear(256→8) for expressions or Linear(256→12)
for action units (the task's output width and activation). Trained on every k-th face frame with AdamW (linear
warm-up, then cosine), early stopping on the validation score, focal loss with inverse-frequency weights for
expressions, 1 − CCC (or RMSE) for valence/arousal, BCE weighted by the negatives/positives ratio for action units.
Frames without a face get predictions filled from their neighbours (``harness.frames``); a track with no face at all
gets the train prior.

Profiles: ``paper`` uses the published backbones at 224 px with ImageNet weights from a local file; ``smoke`` uses
timm's tiny ``test_*`` models at 64 px, randomly initialised, to train in seconds on two CPU cores.
``backbone_args`` passes further ``timm.create_model`` arguments (``video_vit``'s smoke ViT: ``patch_size: 8`` and
stochastic depth over ``test_vit``); they are checked against the backbone's class when the spec is resolved and are
part of the store key when set.
"""

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_serializer
from torch import nn

from harness import distributed
from harness.cpu import PREFETCH, cpu_budget, shared_memory_workers
from harness.data.affwild2 import Split
from harness.errors import SpecError
from harness.frames import fill_missing, hamming_smooth
from harness.metrics import task_scores
from harness.models import face_cache
from harness.models.backbone_weights import LOAD_ERRORS, SNAPSHOT_FILES, check_loaded, snapshot_file
from harness.models.context import FRAMES, Context, frame_column
from harness.models.cuda_graph import inference_forward
from harness.models.face_data import (
    DecodedPixels,
    FaceImages,
    Normalisation,
    Resizer,
    crop_bytes,
    loader,
    normalise,
    resize_key,
    track_batches,
)
from harness.models.registry import Kind, did_you_mean, register_kind
from harness.models.training import (
    EarlyStopping,
    check_converging,
    device,
    mixed_precision,
    seed_everything,
    to_host_later,
    warmup_cosine,
)
from harness.progress import bar
from harness.tasks import LossOptions, Task, TaskDef, get_task

WEIGHTS_ENV = "ABAW_WEIGHTS"  # folder of <backbone>.safetensors (or .pth / .bin) checkpoints, or <backbone>/ snapshots
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".bin")
RESERVED_BACKBONE_ARGS = {  # timm.create_model arguments that _build sets; backbone_args may not override them
    "num_classes": "num_classes=0: the embedding head replaces the classifier",
    "img_size": "from image_size",
    "pretrained": "from pretrained",
    "pretrained_cfg": "the weights come from 'weights:'",
    "pretrained_cfg_overlay": "the weights come from 'weights:'",
    "checkpoint_path": "the weights come from 'weights:'",
}


class VideoSettings(BaseModel):
    """Settings of the static video kind (defaults: the paper's EfficientNet-B1 recipe)."""

    model_config = ConfigDict(extra="forbid")

    backbone: str = "efficientnet_b1"
    image_size: int = Field(224, ge=1)
    backbone_args: dict[str, int | float | str | bool] = Field(default_factory=dict)  # timm.create_model overrides
    pretrained: bool = True
    weights: str | None = None  # a local checkpoint file; default: $ABAW_WEIGHTS/<backbone>.safetensors
    embedding_dim: int = Field(256, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    frame_step: int = Field(5, ge=1)
    eval_step: int = Field(5, ge=1)
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(5e-3, gt=0)
    warmup_start_lr: float = Field(1e-5, ge=0)
    warmup_epochs: float = Field(1.0, ge=0)
    weight_decay: float = Field(1e-4, ge=0)
    patience: int = Field(10, ge=1)
    va_loss: Literal["rmse", "ccc"] = "rmse"
    focal_gamma: float = Field(2.0, ge=0)
    flip: bool = True
    smoothing_frames: int = Field(0, ge=0)
    workers: int = Field(2, ge=0)  # DataLoader decoding processes (0: in the main one); see harness.cpu
    faces: Literal["organizers", "retinaface"] = "organizers"  # which crops: the release's, or harness.faces'
    resize: Resizer = "torch"  # who resizes crops to image_size (harness.models.face_data); smoke keeps PIL's

    @field_validator("backbone_args")
    @classmethod
    def _known_backbone_args(cls, value: dict, info: ValidationInfo) -> dict:
        """Every key an argument of the backbone's timm class, none of those the harness sets itself."""
        reserved = sorted(set(value) & set(RESERVED_BACKBONE_ARGS))
        if reserved:
            why = RESERVED_BACKBONE_ARGS[reserved[0]]
            raise ValueError(f"{reserved[0]!r} is set by the harness ({why}); remove it")
        if value and "backbone" in info.data:
            check_backbone_args(info.data["backbone"], value, info.data.get("image_size"))
        return value

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        """Leave ``faces`` and ``backbone_args`` out of the dump (hence the store key) at their defaults, and
        ``resize`` as :func:`resize_key` says, so earlier keys stay valid."""
        data = handler(self)
        if data.get("faces") == "organizers":
            data.pop("faces")
        if "resize" in data:
            data |= resize_key(data.pop("resize"))
        if not data.get("backbone_args"):
            data.pop("backbone_args", None)
        return data


@register_kind("video")
class VideoKind(Kind):
    """The static video system of one task: fit on train, early-stop on validation, embed and predict frames."""

    version = "1"
    Settings = VideoSettings
    profiles = {
        "paper": {},
        "smoke": {
            "backbone": "test_efficientnet",
            "image_size": 64,
            "pretrained": False,
            "frame_step": 2,
            "eval_step": 3,
            "epochs": 10,
            "batch_size": 32,
            "learning_rate": 3e-3,
            "warmup_epochs": 0.5,
            "patience": 4,
            "workers": 0,
            # PIL's: torch's kernel differs from it by rounding at 64 and 72 px, and smoke's recorded scores are exact
            "resize": "pil",
        },
    }
    outputs = ("pred", "emb", FRAMES)
    distributed_fit = True  # under torchrun every rank runs fit (DistributedDataParallel); see harness.distributed

    def __init__(self, settings: VideoSettings, task: Task, seed: int) -> None:
        self.settings = settings
        self.task = task
        self.seed = seed

    @property
    def task_def(self) -> TaskDef:
        return get_task(self.task)

    @classmethod
    def key_extra(cls, settings: VideoSettings) -> dict[str, str]:
        """The pretrained weights' content hash, so that new weights under the same file name train anew."""
        extra = _faces_key_extra(settings)
        if not settings.pretrained:
            return extra
        digest = hashlib.sha256()
        with open(cls(settings, "va", 0)._weights_file(), "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 22), b""):
                digest.update(chunk)
        return {"weights_sha256": digest.hexdigest(), **extra}

    # -- model -------------------------------------------------------------------------------------------------
    @classmethod
    def shared_memory_bytes(cls, settings: VideoSettings) -> int:
        """The training loader's ready batches: ``workers`` processes (the spec's: their number decides the random
        flips, so it is not lowered to fit) of :data:`~harness.cpu.PREFETCH` batches each."""
        return settings.workers * PREFETCH * settings.batch_size * crop_bytes(settings.image_size)

    def _build(self) -> "VideoNet":
        import timm

        s = self.settings
        if not timm.is_model(s.backbone):
            raise SpecError(
                f"backbone {s.backbone!r} is not a timm model{did_you_mean(s.backbone, timm.list_models())}"
            )
        options: dict = {**s.backbone_args, **_create_options(s.backbone, s.image_size)}
        if not s.pretrained:
            try:
                backbone = timm.create_model(s.backbone, **options)
            except RuntimeError as error:
                raise SpecError(f"backbone {s.backbone!r}: cannot build it ({error})") from error
        else:
            weights = self._weights_file()
            try:
                backbone = timm.create_model(
                    s.backbone, **options, pretrained=True, pretrained_cfg_overlay={"file": str(weights)}
                )
                check_loaded(backbone, weights, s.backbone)
            except LOAD_ERRORS as error:
                raise SpecError(
                    f"backbone {s.backbone!r}: cannot load its weights from {weights} ({error}); expected timm's "
                    f"checkpoint of {s.backbone} (a torn or foreign file: fetch it again)"
                ) from error
        config = backbone.pretrained_cfg
        norm = Normalisation(
            tuple(config.get("mean", (0.485, 0.456, 0.406))), tuple(config.get("std", (0.229, 0.224, 0.225)))
        )
        return VideoNet(backbone, s.embedding_dim, s.dropout, self.task_def, norm)

    def _weights_file(self) -> Path:
        s = self.settings
        if s.weights:
            path = Path(s.weights).expanduser()
        else:
            folder = Path(os.environ.get(WEIGHTS_ENV, "weights")).expanduser()
            candidates = [folder / f"{s.backbone}{suffix}" for suffix in WEIGHT_SUFFIXES] + [folder / s.backbone]
            path = next((candidate for candidate in candidates if candidate.exists()), candidates[0])
        if path.is_dir():  # an HF hub snapshot of the timm model: config.json beside model.safetensors
            inside = snapshot_file(path)
            if inside is None:
                raise SpecError(
                    f"pretrained weights for backbone {s.backbone!r}: {path} is a folder without "
                    f"{' or '.join(SNAPSHOT_FILES)}; give the checkpoint file, or the hub snapshot folder holding it"
                )
            path = inside
        if not path.is_file():
            raise SpecError(
                f"pretrained weights for backbone {s.backbone!r} not found at {path}. Put timm's ImageNet checkpoint "
                f"for {s.backbone} there (e.g. the model.safetensors of timm/{s.backbone} on the Hugging Face hub, "
                f"downloaded on a machine with network access), or set 'weights:' in the spec or ${WEIGHTS_ENV} to "
                f"its folder, or set 'pretrained: false'"
            )
        return path

    # -- fit -----------------------------------------------------------------------------------------------------
    def fit(self, context: Context) -> "VideoKind":
        """Train on every ``frame_step``-th labelled face frame of train; keep the best epoch on validation."""
        s = self.settings
        train, validation = _crops(self.settings, context, "train"), _crops(self.settings, context, "validation")
        train_decoded, val_decoded = self._decoded(context, [train, validation])  # before the seed: it draws none
        generator = seed_everything(self.seed)
        net = self._build()
        train_paths, train_targets = self._labelled_frames(train, s.frame_step)
        val_paths, val_targets = self._labelled_frames(validation, s.eval_step)
        if not len(train_paths):
            raise SpecError(f"video ({self.task}): no labelled face frames in the train split to train on")
        net.set_prior(self.task_def.prior(train_targets))
        on = device()
        net.to(on)
        options = LossOptions(va_loss=s.va_loss, focal_gamma=s.focal_gamma)
        criterion = self.task_def.criterion(train_targets, options).to(on)
        targets = self.task_def.target_tensor(train_targets)
        train_data = FaceImages(train_paths, s.image_size, targets, flip=s.flip, decoded=train_decoded, resize=s.resize)
        batches = loader(train_data, s.batch_size, s.workers, shuffle=True, generator=generator, drop_last=True)
        model, shards = net, None
        if distributed.world_size() > 1:  # under torchrun: DDP, each rank on its share of every epoch's order
            model, shards = distributed.wrap(net), _RankEpochs(train_data, s.batch_size, s.workers, self.seed)
        steps_per_epoch = max(1, len(batches if shards is None else shards))
        total, warmup = s.epochs * steps_per_epoch, int(s.warmup_epochs * steps_per_epoch)
        optimizer = torch.optim.AdamW(net.parameters(), lr=s.warmup_start_lr, weight_decay=s.weight_decay)
        stopper = EarlyStopping(s.patience)
        step = 0
        with bar() as progress:
            job = progress.add_task(f"training video {self.task} ({s.backbone})", total=total)
            for epoch in range(s.epochs):
                net.train()
                for images, targets in batches if shards is None else shards.epoch(epoch):
                    for group in optimizer.param_groups:
                        group["lr"] = warmup_cosine(step, total, warmup, s.warmup_start_lr, s.learning_rate)
                    train_step(model, optimizer, criterion, images, targets, on)
                    step += 1
                    progress.update(job, advance=1)
                if shards is not None:
                    distributed.broadcast_buffers(net)  # rank 0's BatchNorm statistics: every rank scores one model
                score = self._evaluate(net, val_paths, val_targets, val_decoded)
                if stopper.update(epoch, score, net):
                    break
        net.load_state_dict(stopper.best_state)
        self.net_ = net
        self.history_ = stopper.history
        return self

    def _labelled_frames(self, split: Split, step: int) -> tuple[list[Path], np.ndarray]:
        """Every ``step``-th face frame with a valid label, over all tracks of ``split``."""
        paths, targets = [], []
        for track in split.tracks:
            frames = split.face_frames(track.name)
            frames = frames[frames <= track.n_rows]
            labels = track.labels[frames - 1]
            valid = self.task_def.valid(labels)
            chosen = frames[valid][::step]
            paths.extend(split.frame_path(track.name, int(f)) for f in chosen)
            targets.append(labels[valid][::step])
        return paths, np.concatenate(targets) if targets else self.task_def.invalid_labels(0)

    def _decoded(self, context: Context, splits: list[Split], tracks: list[str] | None = None) -> list:
        """Per split, its crops decoded once into the store's shared cache where they fit its bound
        (:mod:`harness.models.face_cache`), else None (decoded each time, as without a store). ``tracks``: this
        rank's tracks to predict; None: every track, each rank decoding its share first (fit under ``torchrun``)."""
        s = self.settings
        wanted = {split.name: list(split.names) if tracks is None else tracks for split in splits}
        if context.cache is None or not all(face_cache.fits(x, wanted[x.name], s.image_size) for x in splits):
            return [None] * len(splits)
        source = {"faces": s.faces, **_faces_key_extra(s)}
        cache = context.shared_cache(face_cache.CACHE_NAME, face_cache.material(s.image_size, source, s.resize))
        workers = inference_workers(s.workers, device(), face_cache.DECODE_BATCH * crop_bytes(s.image_size))
        for split in splits:
            names = wanted[split.name]
            if tracks is None:
                names = distributed.shard(names, [len(split.face_frames(name)) for name in names])
            face_cache.fill(cache, split, names, s.image_size, workers, s.resize)
        if tracks is None:
            distributed.barrier()
        return [face_cache.decoded_crops(cache, split, wanted[split.name], s.image_size) for split in splits]

    @torch.no_grad()
    def _evaluate(
        self, net: "VideoNet", paths: list[Path], targets: np.ndarray, decoded: DecodedPixels | None = None
    ) -> float:
        if not len(paths):
            return 0.0
        if distributed.world_size() > 1:  # each rank forwards a contiguous share; every rank scores them all
            cuts = np.linspace(0, len(paths), distributed.world_size() + 1).astype(int)
            rank = distributed.rank()
            mine = [out for _, out in self._forward(net, paths[cuts[rank] : cuts[rank + 1]], decoded=decoded)]
            outputs = np.concatenate([out for share in distributed.all_gather(mine) for out in share])
        else:
            outputs = np.concatenate([out for _, out in self._forward(net, paths, decoded=decoded)])
        outputs = check_converging(outputs, f"video ({self.task})")
        return task_scores(self.task, self.task_def.decide(outputs), targets).score

    def _forward(
        self,
        net: "VideoNet",
        paths: list[Path],
        batches: list[list[int]] | None = None,
        decoded: DecodedPixels | None = None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(embeddings, stored outputs) batch by batch, in the order of ``paths``.

        On a GPU the forward of each full batch is replayed from a CUDA graph (:mod:`harness.models.cuda_graph`),
        and a batch's outputs are copied to the host without blocking and waited for only once the next batch's
        forward is queued (:func:`~harness.models.training.to_host_later`), so the GPU keeps working while the main
        process waits and fetches the next batch from the loader. On the CPU neither changes anything."""
        s = self.settings
        net.eval()
        on = next(net.parameters()).device
        images = FaceImages(paths, s.image_size, decoded=decoded, resize=s.resize)
        workers = inference_workers(s.workers, on, s.batch_size * crop_bytes(s.image_size))
        full = len(paths) // s.batch_size if batches is None else [len(b) for b in batches].count(s.batch_size)
        forward = inference_forward(net, (s.batch_size, 3, s.image_size, s.image_size), on, full_batches=full)
        previous: Callable[[], tuple[np.ndarray, ...]] | None = None  # the previous batch's outputs, on their way
        with torch.no_grad():
            for pixels, _ in loader(images, s.batch_size, workers, batches=batches):
                with mixed_precision(on):
                    embedding, output = forward(pixels.to(on, non_blocking=True))
                current = to_host_later(embedding.float(), self.task_def.stored_outputs(output.float()))
                if previous is not None:
                    yield previous()
                previous = current
        if previous is not None:
            yield previous()

    # -- predict -------------------------------------------------------------------------------------------------
    def predict(
        self, context: Context, split_name: str, tracks: list[str]
    ) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
        """Per track: ``pred`` (one row per label line: VA values, EXPR or AU probabilities), ``emb`` (one 256-d
        float16 row per face frame of its crops, the release's or RetinaFace's) and ``frames`` (the 1-based frame
        number of each ``emb`` row, so that kinds over it place them by time whatever cut the crops), yielded as
        each track completes.

        Batches never mix tracks, so a track's outputs do not depend on which other tracks are computed with it."""
        net = self._fitted()
        split = _crops(self.settings, context, split_name)
        (decoded,) = self._decoded(context, [split], list(tracks))
        frames = {name: split.face_frames(name) for name in tracks}
        for name in tracks:
            if not len(frames[name]):
                yield name, self._track_outputs(split, name, frames[name], [], [])
        with_faces = [name for name in tracks if len(frames[name])]
        paths = [split.frame_path(name, int(f)) for name in with_faces for f in frames[name]]
        batches = track_batches([len(frames[name]) for name in with_faces], self.settings.batch_size)
        queue = iter(with_faces)
        name, embeddings, outputs = next(queue, None), [], []
        for embedding, output in self._forward(net, paths, batches, decoded):
            embeddings.append(embedding)
            outputs.append(output)
            if sum(len(o) for o in outputs) == len(frames[name]):
                yield name, self._track_outputs(split, name, frames[name], embeddings, outputs)
                name, embeddings, outputs = next(queue, None), [], []

    def _track_outputs(
        self, split: Split, name: str, frames: np.ndarray, embeddings: list[np.ndarray], outputs: list[np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Face-frame outputs → one row per label line (gaps filled from neighbours; no face at all: the prior)."""
        n_rows = split.track(name).n_rows
        if not outputs:
            empty = np.zeros((0, self.settings.embedding_dim), np.float16)
            prior = np.tile(self.net_.prior.cpu().numpy(), (n_rows, 1))
            return {"pred": prior, "emb": empty, FRAMES: frame_column(frames)}
        per_face = np.concatenate(outputs)
        values = np.full((n_rows, per_face.shape[1]), np.nan, np.float32)
        inside = frames <= n_rows
        values[frames[inside] - 1] = per_face[inside]
        if not inside.any():  # every face lies past the label lines: hold the last one
            values[-1] = per_face[-1]
        values = fill_missing(values)
        if self.settings.smoothing_frames > 1:
            values = hamming_smooth(values, self.settings.smoothing_frames)
        embeddings = np.concatenate(embeddings).astype(np.float16)
        return {"pred": values.astype(np.float32), "emb": embeddings, FRAMES: frame_column(frames)}

    # -- state -----------------------------------------------------------------------------------------------------
    def _fitted(self) -> "VideoNet":
        if not hasattr(self, "net_"):
            raise RuntimeError("this video system is not fitted: call fit() or load_state() first")
        return self.net_

    def state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().contiguous() for k, v in self._fitted().state_dict().items()}

    def load_state(self, state: dict[str, torch.Tensor]) -> "VideoKind":
        settings = self.settings.model_copy(update={"pretrained": False})  # the checkpoint holds every weight
        net = VideoKind(settings, self.task, self.seed)._build()
        net.load_state_dict(state)
        self.net_ = net.to(device())
        return self


def train_step(model: nn.Module, optimizer, criterion: nn.Module, images, targets, on: torch.device) -> None:
    """One optimisation step on a batch from the loader (uint8 pixels; both copied to ``on`` without blocking on
    the GPU's queue, from pinned memory)."""
    with mixed_precision(on):
        _, output = model(images.to(on, non_blocking=True))
    loss = criterion(output.float(), targets.to(on, non_blocking=True))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


class VideoNet(nn.Module):
    """Backbone → embedding head → task output (the task's :meth:`~harness.tasks.TaskDef.train_outputs`); ``prior``
    is the no-face fallback output."""

    def __init__(self, backbone: nn.Module, dim: int, dropout: float, task: TaskDef, norm: Normalisation):
        super().__init__()
        self.backbone = backbone
        self.embed = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(backbone.num_features, dim), nn.BatchNorm1d(dim), nn.Tanh()
        )
        self.out = nn.Linear(dim, task.width)
        self.definition = task
        self.register_buffer("prior", torch.zeros(task.width))
        self.register_buffer("pixel_mean", torch.tensor(norm.mean), persistent=False)  # not in saved states
        self.register_buffer("pixel_std", torch.tensor(norm.std), persistent=False)

    def set_prior(self, prior: np.ndarray) -> None:
        self.prior.copy_(torch.as_tensor(prior))

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``pixels``: uint8 (batch, 3, H, W) as :class:`FaceImages` yields them, normalised here, on their device."""
        images = normalise(pixels, self.pixel_mean, self.pixel_std)
        if images.is_cuda:
            images = images.contiguous(memory_format=torch.channels_last)
        embedding = self.embed(self.backbone(images))
        return embedding, self.definition.train_outputs(self.out(embedding))


# -- faces: retinaface (issue #9) ------------------------------------------------------------------------------------
def _crops(settings: VideoSettings, context: Context, split_name: str):
    """The split's face frames and crop paths: the release's crops, or RetinaFace's (computed where missing)."""
    split = context.split(split_name)
    if settings.faces == "organizers":
        return split
    from harness.faces.extract import retinaface_view

    return retinaface_view(context.dataset, split)


def _faces_key_extra(settings: VideoSettings) -> dict[str, str]:
    """With RetinaFace crops, the detector weights' content is part of the key, and so is the ``frames`` output
    (nodes from before it placed their embeddings on the release's face frames; with the organizers' crops those
    are the same frames, so their keys stay)."""
    if settings.faces == "organizers":
        return {}
    from harness.faces.extract import weights_sha256

    return {"faces_weights_sha256": weights_sha256(), "outputs": "pred,emb,frames"}


class _RankEpochs:
    """This rank's training batches of each epoch (DistributedSampler-style): a seeded order per epoch, dealt
    round-robin over the ranks, cut into full batches of ``batch_size`` (per rank); every rank gets as many."""

    def __init__(self, data: FaceImages, batch_size: int, workers: int, seed: int) -> None:
        self.data, self.batch_size, self.workers, self.seed = data, batch_size, workers, seed

    def __len__(self) -> int:
        return -(-len(self.data) // distributed.world_size()) // self.batch_size

    def epoch(self, epoch: int):
        order = distributed.epoch_order(len(self.data), self.seed, epoch)
        size = self.batch_size
        batches = [order[i : i + size] for i in range(0, len(order) - size + 1, size)]
        return loader(self.data, size, self.workers, batches=batches)


def _create_options(backbone: str, image_size: int | None) -> dict:
    """The ``timm.create_model`` arguments the harness sets: no classifier; a ViT's position grid for the image size."""
    options: dict = {"num_classes": 0}
    if "vit" in backbone and image_size is not None:
        options["img_size"] = image_size
    return options


def check_backbone_args(backbone: str, args: dict, image_size: int | None) -> None:
    """Raise ``ValueError`` unless ``timm.create_model(backbone, **args)`` builds: each key must be an argument of
    the backbone's class (with a did-you-mean) and the values must fit together (e.g. ``embed_dim`` a multiple of
    ``num_heads``). Built on the meta device: no memory, no weights, milliseconds."""
    import inspect

    import timm

    options = _create_options(backbone, image_size)
    try:
        with torch.device("meta"):
            plain = timm.create_model(backbone, **options)
    except RuntimeError as error:  # an unknown backbone: the backbone key's problem, reported when it is built
        raise ValueError(f"cannot check them: backbone {backbone!r} does not build ({error})") from None
    parameters = inspect.signature(type(plain).__init__).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    known = [name for name in parameters if name not in ("self", "args", "kwargs")]
    unknown = [key for key in args if key not in known]
    if unknown and not takes_any:
        raise ValueError(
            f"{unknown[0]!r} is not an argument of backbone {backbone!r} ({type(plain).__name__})"
            f"{did_you_mean(unknown[0], known)} (arguments: {', '.join(known)})"
        )
    try:
        with torch.device("meta"):
            timm.create_model(backbone, **{**args, **options})
    except (TypeError, ValueError, AssertionError, RuntimeError) as error:
        reason = str(error) or type(error).__name__
        raise ValueError(f"backbone {backbone!r} does not build with {args} ({reason})") from None


def inference_workers(workers: int, on: torch.device, batch_bytes: int) -> int:
    """Decoding processes for inference: none on the CPU, where the model's intra-op threads already take every core
    of the budget and a decoding process that preempts one of them stalls the whole parallel region (EfficientNet-B1
    at 224 px on 2 cores: 0.72× the raw forward with 2 workers, 0.77× with 1, 0.89× decoding in the main process;
    docs/benchmarks.md). On a GPU the workers decode on otherwise idle cores: every core of the CPU budget but the
    main process's, at least the spec's ``workers``, and no more than shared memory holds the batches of
    (``batch_bytes`` each; :func:`harness.cpu.shared_memory_workers`). Values do not depend on it (no random flips
    at inference)."""
    if on.type == "cpu":
        return 0
    wanted = max(workers, cpu_budget().cores - 1)
    fit = shared_memory_workers(batch_bytes)
    return wanted if fit is None else min(wanted, fit)
