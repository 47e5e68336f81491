"""Progress bars on stderr (rich), so stdout stays clean for data and ``--json``."""

from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness.distributed import env_rank

T = TypeVar("T")
_console = Console(stderr=True)


def bar() -> Progress:
    """A transient progress display on stderr (under torchrun, rank 0's only)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_console,
        transient=True,
        disable=env_rank() != 0,
    )


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate over ``items`` with a progress bar."""
    with bar() as progress:
        yield from progress.track(items, description=description, total=total)


def notice(message: str) -> None:
    """One line on stderr (under torchrun, rank 0's only), for what a run waits on."""
    if env_rank() == 0:
        _console.print(message, highlight=False)
