"""The ABAW releases' test-set file names, and which release a dataset root holds, told from the files present.

The names are data of the task registry (:class:`~harness.tasks.TaskDef`: ``track_list_names``, ``template_codes``,
``folder_releases``); this module reads them. The organizers renamed things between rounds: the 5th ABAW called the
expression challenge ``EXPR_Classification_Challenge`` (test track list
``Expression_Classification_Challenge_test_set_release.txt``, template ``CVPR_5th_ABAW_EXPR_test_set_sample.txt``
whose rows end in a bare comma), the 6th ``EXPR_Recognition_Challenge``
(``Expression_Recognition_Challenge_test_set_release.txt``, ``CVPR_6th_ABAW_Expr_test_set_sample.txt``; some copies
say ``_example``); action units keep ``Action_Unit_Detection_Challenge_test_set_release.txt`` and
``CVPR_<N>th_ABAW_AU_test_set_sample.txt``. Template names carry the round
(``CVPR_<N>th_ABAW_<TASK>_test_set_sample.txt``), so later rounds' templates are recognised by their form.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from harness.tasks import Task, all_tasks
from harness.tasks.base import ordinal

TEMPLATE_FORM = (
    "CVPR_<N>th_ABAW_{"
    + ",".join(task.template_codes[0].upper() for task in all_tasks())
    + "}_test_set_{sample,example}.txt"
)
_TEMPLATE_TASKS: dict[str, Task] = {code.lower(): task.name for task in all_tasks() for code in task.template_codes}
_TEMPLATE = re.compile(
    r"^CVPR_(?P<round>\d+)(?:st|nd|rd|th)_ABAW_(?P<task>"
    + "|".join(map(re.escape, _TEMPLATE_TASKS))
    + r")_test_set_(?P<kind>sample|example)\.txt$",
    re.IGNORECASE,
)
_ROUND_IN_NAME = re.compile(r"(?<!\d)(?P<round>\d+)(?:st|nd|rd|th)[ _-]?ABAW", re.IGNORECASE)
_CHALLENGE_ROUNDS = {name: release for task in all_tasks() for name, release in task.folder_releases.items()}


@dataclass(frozen=True)
class TemplateName:
    """What a template's file name says: its task, the release round, and whether it is a ``sample`` or ``example``."""

    task: Task
    round: int
    kind: str


def parse_template_name(name: str) -> TemplateName | None:
    """The task and round of a prediction template's file name, or None for any other name.

    >>> parse_template_name("CVPR_5th_ABAW_EXPR_test_set_sample.txt")
    TemplateName(task='expr', round=5, kind='sample')
    """
    match = _TEMPLATE.match(name)
    if match is None:
        return None
    return TemplateName(_TEMPLATE_TASKS[match["task"].lower()], int(match["round"]), match["kind"].lower())


def track_list_task(name: str) -> Task | None:
    """The task whose test track list has this file name, or None."""
    return next((task.name for task in all_tasks() if name in task.track_list_names), None)


def looked_for() -> str:
    """The test-set names searched for, for the message about a root without test material."""
    lists = ", ".join(name for task in all_tasks() for name in task.track_list_names)
    return f"track lists {lists}; templates {TEMPLATE_FORM}"


@dataclass(frozen=True)
class Release:
    """The ABAW round a root holds (``None`` when nothing tells) and what told it, one line per clue."""

    round: int | None
    evidence: tuple[str, ...]

    @property
    def name(self) -> str:
        if self.round is not None:
            return f"{ordinal(self.round)} ABAW"
        hints = [clue.rsplit(": ", 1)[-1] for clue in self.evidence]
        return hints[0] if hints else "unknown"

    def to_dict(self) -> dict:
        return {"name": self.name, "round": self.round, "evidence": list(self.evidence)}


def detect_release(annotations: Path | None, challenges: list[str], templates: list[Path]) -> Release:
    """The release from the template names (``CVPR_<N>th_ABAW_...``), the annotation folder's name
    (``6th ABAW Annotations``, ``5th_ABAW_Annotations``) and the challenge folders' names; the newest round named wins.
    """
    evidence: list[str] = []
    rounds: list[int] = []
    for path in templates:
        parsed = parse_template_name(path.name)
        if parsed is not None:
            rounds.append(parsed.round)
            evidence.append(f"template {path.name}: {ordinal(parsed.round)} ABAW")
    if annotations is not None and (match := _ROUND_IN_NAME.search(annotations.name)):
        rounds.append(int(match["round"]))
        evidence.append(f"annotation folder '{annotations.name}': {ordinal(int(match['round']))} ABAW")
    for name in challenges:
        if name in _CHALLENGE_ROUNDS:
            evidence.append(f"challenge folder {name}: {_CHALLENGE_ROUNDS[name]}")
    return Release(max(rounds) if rounds else None, tuple(evidence))
