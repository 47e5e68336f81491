"""Dynamic video kind: a temporal model over a static video spec's frame embeddings (SUN team, ABAW 2024,
arXiv 2403.12609, "dynamic" systems).

The input spec's 256-d face embeddings are resampled to 5 steps a second by real timestamps and kept in memory as
one table per split (on the GPU when there is one); windows of W seconds advance by W/2 and a batch is a gather of
row indices. Model: BatchNorm over the features → sinusoidal positions → N Transformer encoder layers (or a
bidirectional GRU) → one output per step, as the task defines them (VA: 2 with tanh, loss (1−CCC_v)+(1−CCC_a); EXPR:
8 logits, focal loss with inverse-frequency weights; AU: 12 logits, BCE weighted by the negatives/positives ratio).
Features are normalised with statistics of the training split (min-max) or per track. Early stopping on the
validation score at step level; overlapping window outputs are averaged per step and interpolated to every frame. A
track without any face gets the training prior.
"""

import math
from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from harness import distributed
from harness.errors import SpecError
from harness.frames import average_windows, frame_times, interpolate_to_frames
from harness.metrics import task_scores
from harness.models.context import Context
from harness.models.registry import Kind, register_kind
from harness.models.step_table import StepTable, build_table, normalisation, normalise, window_rows, windows
from harness.models.training import EarlyStopping, check_converging, device, seed_everything
from harness.steps import step_centres
from harness.tasks import LossOptions, Task, TaskDef, get_task


class DynamicSettings(BaseModel):
    """Settings of the dynamic kind (defaults: the paper's 3-layer Transformer over 4 s windows)."""

    model_config = ConfigDict(extra="forbid")

    window_s: float = Field(4.0, gt=0)
    rate: float = Field(5.0, gt=0)  # steps a second
    normalisation: Literal["minmax", "track"] = "minmax"
    temporal: Literal["transformer", "gru"] = "transformer"
    layers: int = Field(3, ge=1)
    heads: int = Field(8, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    epochs: int = Field(100, ge=1)
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(5e-4, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    patience: int = Field(10, ge=1)
    focal_gamma: float = Field(2.0, ge=0)


@register_kind("dynamic")
class DynamicKind(Kind):
    """A temporal model of one task over the embeddings of one static video spec."""

    version = "1"
    Settings = DynamicSettings
    profiles = {"paper": {}, "smoke": {"layers": 1, "epochs": 40, "patience": 8, "learning_rate": 1e-3}}
    outputs = ("pred",)
    distributed_fit = True  # under torchrun every rank runs fit (DistributedDataParallel); see harness.distributed

    def __init__(self, settings: DynamicSettings, task: Task, seed: int) -> None:
        self.settings = settings
        self.task = task
        self.seed = seed

    @property
    def task_def(self) -> TaskDef:
        return get_task(self.task)

    @property
    def width(self) -> int:
        return max(1, round(self.settings.window_s * self.settings.rate))

    def _source(self, context: Context):
        if len(context.inputs) != 1:
            raise SpecError(
                f"a dynamic system takes exactly one input (a static video spec), found {len(context.inputs)}: "
                f"{', '.join(context.inputs) or 'none'}"
            )
        return next(iter(context.inputs.values()))

    def _table(self, context: Context, split_name: str, names: list[str] | None = None) -> StepTable:
        dim = len(self.shift_) if hasattr(self, "shift_") else None
        return build_table(context.split(split_name), self._source(context), self.task, self.settings.rate, names, dim)

    # -- fit -----------------------------------------------------------------------------------------------------------
    def fit(self, context: Context) -> "DynamicKind":
        """Train on the training windows; keep the epoch with the best validation score."""
        s = self.settings
        generator = seed_everything(self.seed)
        train, validation = self._table(context, "train"), self._table(context, "validation")
        self.shift_, self.scale_ = normalisation(train, s.normalisation)
        self.prior_ = self.task_def.prior(train.targets[train.valid])
        on = device()
        net = TemporalNet(train.features.shape[1], self.task, s).to(on)
        model = distributed.wrap(net) if distributed.world_size() > 1 else net
        features = torch.from_numpy(normalise(train, s.normalisation, self.shift_, self.scale_)).to(on)
        targets, valid = self.task_def.target_tensor(train.targets).to(on), torch.from_numpy(train.valid).to(on)
        tracks, starts = windows(train, self.width, max(1, self.width // 2))
        rows, inside = window_rows(train, tracks, starts, self.width)
        keep = (train.valid[rows] & inside).any(1)
        rows, inside = torch.from_numpy(rows[keep]).to(on), torch.from_numpy(inside[keep]).to(on)
        if not len(rows):
            raise SpecError(f"dynamic ({self.task}): no training window has a valid label")
        options = LossOptions(va_loss="ccc", focal_gamma=s.focal_gamma)
        loss_of = self.task_def.criterion(train.targets[train.valid], options).to(on)
        optimizer = torch.optim.AdamW(net.parameters(), lr=s.learning_rate, weight_decay=s.weight_decay)
        stopper = EarlyStopping(s.patience)
        for epoch in range(s.epochs):
            net.train()
            order = torch.randperm(len(rows), generator=generator).to(on)
            if model is not net:  # DDP: this rank's share of the epoch's order, as many batches on every rank
                order = torch.tensor(distributed.deal(order.tolist()), device=on)
            for begin in range(0, len(order), s.batch_size):
                batch = rows[order[begin : begin + s.batch_size]]
                mask = valid[batch] & inside[order[begin : begin + s.batch_size]]
                loss = loss_of(model(features[batch])[mask], targets[batch][mask])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            if model is not net:
                distributed.broadcast_buffers(net)  # rank 0's BatchNorm statistics: every rank scores one model
            score = self._step_score(net, validation)
            if stopper.update(epoch, distributed.broadcast(score) if model is not net else score, net):
                break
        net.load_state_dict(stopper.best_state)
        self.net_ = net.eval()
        self.history_ = stopper.history
        self.notes_: list[str] = []
        return self

    @torch.no_grad()
    def _step_outputs(self, net: "TemporalNet", table: StepTable) -> np.ndarray:
        """Stored outputs ``(steps, width)`` for a whole table (VA values, EXPR or AU probabilities): windows averaged
        per step."""
        net.eval()
        on = next(net.parameters()).device
        features = torch.from_numpy(normalise(table, self.settings.normalisation, self.shift_, self.scale_)).to(on)
        tracks, starts = windows(table, self.width, max(1, self.width // 2))
        rows, _ = window_rows(table, tracks, starts, self.width)
        outputs = []
        for begin in range(0, len(rows), 256):
            out = net(features[torch.from_numpy(rows[begin : begin + 256]).to(on)]).float()
            outputs.append(self.task_def.stored_outputs(out).cpu().numpy())
        window_values = np.concatenate(outputs)
        per_step = np.empty((len(table.features), window_values.shape[-1]), np.float32)
        for index in range(len(table.names)):
            chosen = tracks == index
            per_step[table.track_rows(index)] = average_windows(
                window_values[chosen], starts[chosen], int(table.lengths[index])
            )
        return per_step

    def _step_score(self, net: "TemporalNet", table: StepTable) -> float:
        if not table.valid.any():
            return 0.0
        outputs = check_converging(self._step_outputs(net, table)[table.valid], f"dynamic ({self.task})")
        pred = self.task_def.decide(outputs)
        return task_scores(self.task, pred, table.targets[table.valid]).score

    # -- predict -------------------------------------------------------------------------------------------------------
    def predict(
        self, context: Context, split_name: str, tracks: list[str]
    ) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
        """Per track, ``pred``: one row per label line (VA values, EXPR or AU probabilities)."""
        net = self._fitted()
        split = context.split(split_name)
        table = self._table(context, split_name, tracks)
        faceless = set(table.faceless)
        self.notes_ = sorted(set(getattr(self, "notes_", [])) | {_faceless_note(self.task, n) for n in faceless})
        per_step = self._step_outputs(net, table)
        for index, name in enumerate(table.names):
            track = split.track(name)
            if name in faceless:
                yield name, {"pred": np.tile(self.prior_, (track.n_rows, 1)).astype(np.float32)}
                continue
            centres = step_centres(int(table.lengths[index]), self.settings.rate)
            frames = interpolate_to_frames(
                centres, per_step[table.track_rows(index)], frame_times(track.n_rows, split.fps(name))
            )
            yield name, {"pred": frames.astype(np.float32)}

    # -- state ---------------------------------------------------------------------------------------------------------
    def _fitted(self) -> "TemporalNet":
        if not hasattr(self, "net_"):
            raise RuntimeError("this dynamic system is not fitted: call fit() or load_state() first")
        return self.net_

    def state(self) -> dict[str, torch.Tensor]:
        net = self._fitted()
        state = {f"net.{k}": v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
        arrays = {"shift": self.shift_, "scale": self.scale_, "prior": self.prior_}
        return {**state, **{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}}

    def load_state(self, state: dict[str, torch.Tensor]) -> "DynamicKind":
        self.shift_, self.scale_ = state["shift"].numpy(), state["scale"].numpy()
        self.prior_ = state["prior"].numpy()
        net = TemporalNet(len(self.shift_), self.task, self.settings)
        net.load_state_dict({k[len("net.") :]: v for k, v in state.items() if k.startswith("net.")})
        self.net_ = net.to(device()).eval()
        return self


def _faceless_note(task: Task, name: str) -> str:
    return f"dynamic ({task}): track {name!r} has no face in its input's embeddings; the training prior answers"


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """``(length, dim)`` fixed positional encoding: sin on even, cos on odd features, wavelengths up to 10⁴·2π."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return table


class TemporalNet(nn.Module):
    """BatchNorm over features → positions → Transformer encoder (or bidirectional GRU) → per-step output (the task's
    :meth:`~harness.tasks.TaskDef.train_outputs`)."""

    def __init__(self, dim: int, task: Task, settings: DynamicSettings) -> None:
        super().__init__()
        s = settings
        self.task, self.definition = task, get_task(task)
        self.norm = nn.BatchNorm1d(dim)
        if s.temporal == "transformer":
            if dim % s.heads:
                raise SpecError(f"key 'heads': the embedding size {dim} must be divisible by heads, found {s.heads}")
            layer = nn.TransformerEncoderLayer(dim, s.heads, 2 * dim, s.dropout, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, s.layers, enable_nested_tensor=False)
        else:
            if dim % 2:
                raise SpecError(f"key 'temporal': a bidirectional GRU needs an even embedding size, found {dim}")
            self.encoder = nn.GRU(dim, dim // 2, s.layers, batch_first=True, bidirectional=True, dropout=s.dropout)
        self.head = nn.Linear(dim, self.definition.width)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(batch, steps, dim)`` → ``(batch, steps, outputs)``."""
        x = self.norm(features.transpose(1, 2)).transpose(1, 2)
        if isinstance(self.encoder, nn.GRU):
            x = self.encoder(x)[0]
        else:
            x = self.encoder(x + sinusoidal_positions(x.shape[1], x.shape[2]).to(x.device))
        return self.definition.train_outputs(self.head(x))
