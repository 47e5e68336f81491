"""What a kind sees of the world while it fits and predicts: the dataset's splits for its task and its inputs.

Kinds never touch the store or the DAG (only the runner does); an input is offered through :class:`InputOutputs`,
which reads what the input node produced, per output name, split and track.

Outputs. A kind lists in ``outputs`` what its ``predict`` yields for every track of every split (``"pred"``: one row
per label line and the task's ``width`` columns, e.g. VA values ``(n, 2)``, EXPR class probabilities ``(n, 8)``, AU
probabilities ``(n, 12)``, from which the task's ``decide`` takes the hard predictions; an embedding such as
``"emb"``, one row per face frame, comes with :data:`FRAMES`, the frame of each row), and may list in
``validation_outputs`` what it yields for the validation split only. The runner checks each track's outputs
(:mod:`harness.models.checks`), writes each output ``o`` of split ``s`` as the per-track group ``"{o}-{s}"`` and
counts a node complete when all of them are there.

Honest scores: a kind that chooses anything on the validation split (fusion weights, a forest, a regulariser, a
threshold) opts in by putting :data:`HONEST` in ``validation_outputs`` and, for each validation track, yielding beside
``pred`` an ``honest`` array of the same shape: the prediction of the whole fitting procedure (every choice made on
validation included) repeated on the other folds of whole videos (:func:`harness.fusion_math.video_folds`), so that
no frame of the track's video was seen. The runner scores ``pred`` (recorded as the in-sample score, marked
``fitted_on_validation``) and ``honest`` (``honest_score``, ``honest_ci``, with the statistics of the honest
predictions) on one leaderboard row; rankings and paired tests use the honest score. A kind fitted on validation on
top of such an input (fusion) fits on the input's ``honest`` validation predictions (:attr:`InputOutputs.honest`):
its in-sample ones look better on validation than the input will do on test.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from harness.data.affwild2 import Dataset, Split
from harness.tasks import Task

HONEST = "honest"  # the validation-only output of cross-fitted predictions (see the module docstring)
FRAMES = "frames"  # beside an embedding output: the 1-based video frame of each of its rows, ``(n, 1)`` int32


def frame_column(frames: np.ndarray) -> np.ndarray:
    """Frame numbers as the ``frames`` output stores them: one int32 row each."""
    return np.asarray(frames, dtype=np.int32).reshape(-1, 1)


def split_outputs(kind, split: str) -> tuple[str, ...]:
    """The outputs a kind writes for ``split``: ``outputs``, plus ``validation_outputs`` on validation."""
    extra = tuple(kind.validation_outputs) if split == "validation" else ()
    return tuple(kind.outputs) + extra


class TrackCache(Protocol):
    """Per-track arrays that outlive one node and are shared by every node asking with the same material
    (decoded voice activity, frozen encoder features): checksummed and resumable like node outputs."""

    def missing_tracks(self, group: str, tracks: list[str]) -> list[str]: ...

    def write_track(self, group: str, track: str, array: np.ndarray, dtype=None) -> None: ...

    def read_track(self, group: str, track: str, mmap: bool = True) -> np.ndarray: ...


class InputOutputs(Protocol):
    """Read access to one input node's per-track outputs (e.g. ``emb`` or ``pred``)."""

    name: str
    honest: bool  # whether its validation predictions come with cross-fitted ``honest`` ones (it chose on validation)

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
