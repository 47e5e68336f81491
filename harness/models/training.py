"""Training pieces shared by the neural kinds: seeding, device, losses, learning-rate schedule, early stopping.

Losses follow the SUN team's systems (arXiv 2403.12609): focal loss with inverse-frequency class weights for
expressions, 1 − CCC (or RMSE) for valence/arousal; AdamW with a linear warm-up then a cosine decay.
"""

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from harness.errors import TrainingError


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, numpy and torch; return a torch generator for samplers."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def device() -> torch.device:
    """The GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def mixed_precision(on: torch.device, cache: bool = True):
    """bfloat16 autocast on a GPU (matrix products and convolutions; losses and reductions stay float32); a no-op on
    the CPU, whose results stay those of float32. ``cache=False`` casts the weights anew at each use, as capturing a
    CUDA graph needs (:mod:`harness.models.cuda_graph`)."""
    return torch.autocast(device_type=on.type, dtype=torch.bfloat16, enabled=on.type == "cuda", cache_enabled=cache)


def to_host_later(*tensors: torch.Tensor) -> Callable[[], tuple[np.ndarray, ...]]:
    """Start copying ``tensors`` to the host and return the function that waits for that copy alone and gives them
    as arrays. On a GPU the copies go to pinned memory without blocking, and an event marks their end: called once
    the next batch's work is queued, the wait leaves the GPU busy (``.cpu()`` would wait for everything queued, the
    next batch too). Elsewhere the arrays are there at once."""
    host = tuple(tensor.to("cpu", non_blocking=True) for tensor in tensors)
    if not any(tensor.is_cuda for tensor in tensors):
        return lambda: tuple(tensor.numpy() for tensor in host)
    copied = torch.cuda.Event()
    copied.record()

    def wait() -> tuple[np.ndarray, ...]:
        copied.synchronize()
        return tuple(tensor.numpy() for tensor in host)

    return wait


def ccc_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum over columns of 1 − CCC (population moments), for (n, d) predictions and targets."""
    pred_mean, target_mean = pred.mean(0), target.mean(0)
    covariance = ((pred - pred_mean) * (target - target_mean)).mean(0)
    denominator = pred.var(0, unbiased=False) + target.var(0, unbiased=False) + (pred_mean - target_mean) ** 2
    return (1 - 2 * covariance / (denominator + 1e-8)).sum()


def rmse_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(((pred - target) ** 2).mean() + 1e-12)


class FunctionLoss(nn.Module):
    """A loss function of (prediction, float target) as a module, like the class-based losses."""

    def __init__(self, function) -> None:
        super().__init__()
        self.function = function

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.function(pred, target.float())


class FocalLoss(nn.Module):
    """Multi-class focal loss ``−w_y (1 − p_y)^γ log p_y``, averaged over the batch."""

    def __init__(self, class_weights: torch.Tensor, gamma: float = 2.0) -> None:
        super().__init__()
        self.register_buffer("class_weights", class_weights)
        self.gamma = gamma

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = torch.log_softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
        weight = self.class_weights[target] * (1 - log_p.exp()) ** self.gamma
        return -(weight * log_p).sum() / self.class_weights[target].sum().clamp_min(1e-8)


def inverse_frequency_weights(labels: np.ndarray, classes: int) -> torch.Tensor:
    """Class weights ∝ 1 / frequency over the valid labels, normalised to mean 1; absent classes get weight 1."""
    counts = np.bincount(labels[labels >= 0], minlength=classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / (classes * np.maximum(counts, 1)), 1.0)
    return torch.tensor(weights / weights.mean(), dtype=torch.float32)


def warmup_cosine(step: int, total: int, warmup: int, start_lr: float, peak_lr: float) -> float:
    """Linear warm-up from ``start_lr`` to ``peak_lr`` over ``warmup`` steps, then cosine decay to 0."""
    if step < warmup:
        return start_lr + (peak_lr - start_lr) * step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * peak_lr * (1 + math.cos(math.pi * min(1.0, progress)))


def check_converging(outputs: np.ndarray, who: str) -> np.ndarray:
    """``outputs`` (a model's validation outputs after an epoch), or an error where any is NaN or inf: training
    diverged. Left to the metric, NaN would decide as class 0 (EXPR) or as no AU, and fail VA with advice about
    frames without a face."""
    if not np.isfinite(outputs).all():
        raise TrainingError(
            f"{who}: the validation outputs hold NaN or inf after this epoch: training diverged; lower the "
            f"learning_rate in the spec's profile block"
        )
    return outputs


@dataclass
class EarlyStopping:
    """Keep the best state by validation score; stop after ``patience`` epochs without improvement."""

    patience: int
    best_score: float = -math.inf
    best_epoch: int = -1
    best_state: dict[str, torch.Tensor] = field(default_factory=dict)
    history: list[float] = field(default_factory=list)

    def update(self, epoch: int, score: float, model: nn.Module) -> bool:
        """Record an epoch's score; True when training should stop."""
        self.history.append(score)
        if score > self.best_score:
            self.best_score, self.best_epoch = score, epoch
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return epoch - self.best_epoch >= self.patience
