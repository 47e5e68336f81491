"""Typed errors whose message is written for the user; the CLI turns them into a message and an exit code."""


class HarnessError(Exception):
    """An error raised on purpose: its message names the input, its owner, what was expected and what was found."""


class DataError(HarnessError):
    """A dataset file or folder is missing, malformed or inconsistent."""


class SpecError(HarnessError):
    """A system spec is malformed, names an unknown kind, setting or input, or its inputs form a cycle."""


class SubmissionError(HarnessError):
    """A prediction file cannot be written, read, validated or scored."""
