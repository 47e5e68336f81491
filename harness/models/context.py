"""What a kind sees of the world while it fits and predicts: the dataset's splits for its task and its inputs.

Kinds never touch the store or the DAG (only the runner does); an input is offered through :class:`InputOutputs`,
which reads what the input node produced, per output name, split and track.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from harness.data.affwild2 import Dataset, Split
from harness.tasks import Task


class TrackCache(Protocol):
    """Per-track arrays that outlive one node and are shared by every node asking with the same material
    (decoded voice activity, frozen encoder features): checksummed and resumable like node outputs."""

    def missing_tracks(self, group: str, tracks: list[str]) -> list[str]: ...

    def write_track(self, group: str, track: str, array: np.ndarray, dtype=None) -> None: ...

    def read_track(self, group: str, track: str, mmap: bool = True) -> np.ndarray: ...


class InputOutputs(Protocol):
    """Read access to one input node's per-track outputs (e.g. ``emb`` or ``pred``)."""

    name: str

    def read(self, output: str, split: str, track: str) -> np.ndarray: ...


@dataclass
class Context:
    """The dataset, the task and the inputs of one node."""

    dataset: Dataset
    task: Task
    inputs: Mapping[str, InputOutputs] = field(default_factory=dict)
    cache: Callable[[str, Mapping], TrackCache] | None = None

    def split(self, name: str) -> Split:
        return self.dataset.split(self.task, name)

    def shared_cache(self, name: str, material: Mapping) -> TrackCache:
        """The cache ``name`` for ``material`` (everything that determines its content, a version included)."""
        if self.cache is None:
            raise RuntimeError("this context has no cache (run the kind through the runner)")
        return self.cache(name, material)
