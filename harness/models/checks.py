"""Runner-side checks of what a kind yields, before a track is written and before its node counts as complete.

Every track asked for must come back, with every output of its split (:func:`~harness.models.context.split_outputs`)
and no other, each a 2-D array of finite numbers with :func:`expected_rows` rows (a prediction: one per label line,
``Track.n_rows``, on the test split one per template frame; an embedding: one per face frame, which only the kind
knows) and :func:`expected_width` columns. A violation is a
:class:`~harness.errors.KindOutputError` naming the system, node, track, output, what was expected and what was found.
"""

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from pydantic import BaseModel

from harness.errors import KindOutputError
from harness.models.context import FRAMES, HONEST
from harness.tasks import Task, get_task

PREDICTIONS: tuple[str, ...] = ("pred", HONEST)  # the outputs that are predictions (scored, fused, submitted)


def expected_rows(output: str, label_lines: int) -> int | None:
    """The rows of ``output``: one per label line for a prediction (``pred``, ``honest``); None (any) for an
    embedding, which the video kind writes per face frame."""
    return label_lines if output in PREDICTIONS else None


def expected_width(task: Task, output: str, settings: BaseModel) -> int | None:
    """The columns of ``output``: the task's prediction width for ``pred`` and ``honest``, one for ``frames``, the
    settings' ``embedding_dim`` for any other output of a kind that has one, else None (any width)."""
    if output in PREDICTIONS:
        return get_task(task).width
    if output == FRAMES:
        return 1
    return getattr(settings, "embedding_dim", None)


def check_track(
    where: str,
    task: Task,
    settings: BaseModel,
    split_name: str,
    track: str,
    asked: Mapping[str, int],
    outputs: Mapping[str, object],
    expected: Iterable[str],
) -> None:
    """One yielded track: one of those ``asked`` for (name: label lines), with exactly the ``expected`` outputs, each
    an array of ``(label lines, width)`` finite numbers."""
    place = f"{where}, track {track!r} ({split_name})"
    if track not in asked:
        raise KindOutputError(f"{place}: expected one of the {len(asked)} tracks asked for, found this one")
    expected = tuple(expected)
    if sorted(outputs) != sorted(expected):
        raise KindOutputError(
            f"{place}: expected the outputs {', '.join(expected)}, found {', '.join(sorted(outputs)) or 'none'}"
        )
    for output, value in outputs.items():
        array = np.asarray(value)
        at = f"{place}, output {output!r}"
        rows, width = expected_rows(output, asked[track]), expected_width(task, output, settings)
        if not np.issubdtype(array.dtype, np.number):
            raise KindOutputError(f"{at}: expected numbers, found dtype {array.dtype}")
        if array.ndim != 2:
            raise KindOutputError(f"{at}: expected a 2-D array (rows, columns), found shape {array.shape}")
        if rows is not None and array.shape[0] != rows:
            raise KindOutputError(f"{at}: expected {rows} rows (one per label line), found {array.shape[0]}")
        if width is not None and array.shape[1] != width:
            raise KindOutputError(f"{at}: expected {width} columns ({task}), found {array.shape[1]}")
        bad = ~np.isfinite(array)
        if bad.any():
            row = int(np.flatnonzero(bad.any(axis=1))[0])
            raise KindOutputError(
                f"{at}: expected finite values, found {int(bad.sum())} NaN or inf (first in row {row})"
            )


def check_tracks_done(where: str, split_name: str, output: str, missing: Sequence[str]) -> None:
    """No track of ``output`` is ``missing`` (asked for, but not yielded or not in the store)."""
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        shown = ", ".join(repr(name) for name in missing[:3]) + more
        raise KindOutputError(
            f"{where}, track {shown} ({split_name}), output {output!r}: expected every track of the split, found none"
        )
