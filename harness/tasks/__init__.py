"""The ABAW challenge tasks as registered objects: ``get_task(name)``, ``TASKS`` (names in registry order).

Each task is one module here defining a :class:`~harness.tasks.base.TaskDef` subclass; adding a task is one module
and one line in :data:`_REGISTRY`. Everything else in the harness holds a task *name* (store keys, specs, the CLI,
leaderboard rows) and asks its definition.
"""

from __future__ import annotations

import difflib

from harness.tasks.au import ActionUnits
from harness.tasks.base import Breakdown, Chance, LossOptions, TaskDef, TaskScores
from harness.tasks.expr import Expression
from harness.tasks.va import ValenceArousal

Task = str  # a registered task's name: 'va', 'expr', 'au'

_REGISTRY: dict[str, TaskDef] = {task.name: task for task in (ValenceArousal(), Expression(), ActionUnits())}
TASKS: tuple[Task, ...] = tuple(_REGISTRY)


def get_task(name: str) -> TaskDef:
    """The registered task called ``name``; a ``ValueError`` with a did-you-mean otherwise."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), TASKS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}{hint}") from None


def all_tasks() -> tuple[TaskDef, ...]:
    return tuple(_REGISTRY.values())


__all__ = ["TASKS", "Breakdown", "Chance", "LossOptions", "Task", "TaskDef", "TaskScores", "all_tasks", "get_task"]
