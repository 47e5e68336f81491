"""Terminal tables that keep system names and paths whole in a narrow terminal (80 columns in CI logs, ``ssh``).

Left alone, rich fits a table wider than the console by squeezing every column and cutting cells with an ellipsis
(``dynam…``). Here a column marked ``whole`` (a system name) never wraps and never loses a character: columns with a
``drop`` rank leave the table instead, lowest rank first, until what is left fits with the whole columns at their
full width and every other column at its longest word. When even the columns always shown do not fit that way, the
whole columns fold onto the next line instead (``overflow="fold"``: nothing is lost, no ``…``). Paths are best
printed on lines of their own below a table (``Console.print(..., soft_wrap=True)``): the terminal alone wraps them.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console, JustifyMethod, RenderableType
from rich.measure import Measurement
from rich.table import Table


@dataclass(frozen=True)
class Col:
    """A column: its header, whether its values print whole, and when it leaves a table too wide (1 first)."""

    header: str
    whole: bool = False
    drop: int | None = None  # None: always shown
    justify: JustifyMethod = "left"


def fitted_table(
    columns: Sequence[Col],
    rows: Sequence[Sequence[RenderableType]],
    width: int,
    styles: Sequence[str | None] | None = None,
    **options,
) -> tuple[Table, list[str]]:
    """A table of ``rows`` that fits ``width`` columns with its whole columns unbroken, and the headers of the
    columns dropped to make it fit. String cells are console markup; ``options`` go to :class:`rich.table.Table`."""
    console = Console(width=max(width, 1))
    needs, maxima = [], []
    for index, column in enumerate(columns):
        sizes = [Measurement.get(console, console.options, cell) for cell in [column.header, *(r[index] for r in rows)]]
        maxima.append(max(size.maximum for size in sizes))
        needs.append(maxima[-1] if column.whole else max(size.minimum for size in sizes))
    kept = list(range(len(columns)))
    droppable = sorted((c.drop, i) for i, c in enumerate(columns) if c.drop is not None)
    while _table_width([needs[i] for i in kept]) > width and droppable:
        kept.remove(droppable.pop(0)[1])
    fits = _table_width([needs[i] for i in kept]) <= width  # else whole values fold: never cut, no "…"
    widths = _widths([needs[i] for i in kept], [maxima[i] for i in kept], width)
    table = Table(**options)
    for index, fixed in zip(kept, widths, strict=True):
        column = columns[index]
        no_wrap = column.whole and fits
        table.add_column(column.header, justify=column.justify, overflow="fold", width=fixed, no_wrap=no_wrap)
    for number, row in enumerate(rows):
        table.add_row(*(row[i] for i in kept), style=styles[number] if styles else None)
    return table, [columns[i].header for i in range(len(columns)) if i not in kept]


def _widths(needs: list[int], maxima: list[int], width: int) -> list[int | None]:
    """Column widths when the table must shrink: every column its need, then the room left goes to the columns
    that need least of it to print unwrapped, smallest first (fewest wrapped cells; rich's own shrinking cuts below
    a column's longest word). ``None`` each where the table fits as it is (rich sizes it) or where even the needs
    do not fit (rich shrinks it, folding)."""
    if _table_width(maxima) <= width or _table_width(needs) > width:
        return [None] * len(needs)
    widths = list(needs)
    room = width - _table_width(needs)
    for index in sorted(range(len(needs)), key=lambda i: maxima[i] - needs[i]):
        grant = min(room, maxima[index] - needs[index])
        widths[index] += grant
        room -= grant
    return widths


def _table_width(contents: list[int]) -> int:
    """Width of a table with rich's default box and padding: one space each side of a cell, a rule between cells
    and at both edges."""
    return sum(contents) + 3 * len(contents) + 1


def dropped_note(dropped: Sequence[str]) -> str:
    """One line saying which columns a narrow terminal hid, and where to see them."""
    return f"(too narrow for: {', '.join(dropped)}; widen the terminal or use --json)" if dropped else ""
