"""Checks shared by the metric code of every task: task names and finite values.

Each function returns the validated input or raises ``ValueError`` naming what was wrong; the task-specific checks of
predictions and labels are the tasks' own (:meth:`harness.tasks.TaskDef.check_pair`).
"""

from __future__ import annotations

import numpy as np


def check_task(task: str) -> str:
    """``task`` itself when it is a registered task name; otherwise a ``ValueError`` with a did-you-mean."""
    from harness.tasks import get_task

    return get_task(task).name


def check_finite(values: np.ndarray, what: str) -> None:
    """Refuse NaN or inf anywhere in ``values``, naming the count of bad rows and the first one."""
    if not np.isfinite(values).all():
        rows = ~np.isfinite(values).reshape(values.shape[0], -1).all(axis=1)
        bad = np.flatnonzero(rows)
        raise ValueError(
            f"{what} contain {bad.size} row(s) with NaN or inf, the first at row {bad[0]}; "
            "every frame needs a finite value (fill frames without a face from their neighbours)"
        )
