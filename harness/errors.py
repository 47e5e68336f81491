"""Typed errors whose message is written for the user; the CLI turns them into a message and an exit code."""


class HarnessError(Exception):
    """An error raised on purpose: its message names the input, its owner, what was expected and what was found."""


class DataError(HarnessError):
    """A dataset file or folder is missing, malformed or inconsistent."""


class SpecError(HarnessError):
    """A system spec is malformed, names an unknown kind, setting or input, or its inputs form a cycle."""


class SubmissionError(HarnessError):
    """A prediction file cannot be written, read, validated or scored."""


class StoreError(HarnessError):
    """A store artifact is missing, torn, foreign or unsafe to name; it is not trusted and will be recomputed."""


class LeaderboardError(HarnessError):
    """The leaderboard file cannot be opened or read, or a run record is malformed."""


class KindOutputError(HarnessError):
    """A kind yielded outputs that break its contract (a missing track or output, wrong rows or width, NaN or inf);
    the node is not completed, and a later run computes what it lacks again."""


class TrainingError(HarnessError):
    """Training went wrong in a way the spec's settings can fix (a diverged model); nothing of the node is kept."""
