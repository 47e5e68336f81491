"""What a kind sees of the world while it fits and predicts: the dataset's splits for its task and its inputs.

Kinds never touch the store or the DAG (only the runner does); an input is offered through :class:`InputOutputs`,
which reads what the input node produced, per output name, split and track.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from harness.data.affwild2 import Dataset, Split
from harness.tasks import Task


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

    def split(self, name: str) -> Split:
        return self.dataset.split(self.task, name)
