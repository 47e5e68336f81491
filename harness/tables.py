"""Terminal tables that keep system names and paths whole in a narrow terminal (80 columns in CI logs, ``ssh``).

Left alone, rich fits a table wider than the console by squeezing every column and cutting cells with an ellipsis
(``dynam…``). Here a column marked ``whole`` (a system name) never wraps and never loses a character: columns with a
``drop`` rank leave the table instead, lowest rank first, until what is left fits with the whole columns at their
full width and every other column at its longest word. Only a whole value wider than the console itself folds onto
the next line (``overflow="fold"``: nothing is lost, nothing is replaced by ``…``). Paths are best printed on lines
of their own below a table (``Console.print(..., soft_wrap=True)``), where the terminal alone wraps them.
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
    needs = []
    for index, column in enumerate(columns):
        cells = [column.header, *(row[index] for row in rows)]
        sizes = [Measurement.get(console, console.options, cell) for cell in cells]
        needs.append(max(size.maximum if column.whole else size.minimum for size in sizes))
    kept = list(range(len(columns)))
    droppable = sorted((c.drop, i) for i, c in enumerate(columns) if c.drop is not None)
    while _table_width([needs[i] for i in kept]) > width and droppable:
        kept.remove(droppable.pop(0)[1])
    table = Table(**options)
    for index in kept:
        column = columns[index]
        whole = (
            {"no_wrap": True, "overflow": "fold", "min_width": min(needs[index], max(width - 4, 1))}
            if column.whole
            else {}
        )
        table.add_column(column.header, justify=column.justify, **whole)
    for number, row in enumerate(rows):
        table.add_row(*(row[i] for i in kept), style=styles[number] if styles else None)
    return table, [columns[i].header for i in range(len(columns)) if i not in kept]


def _table_width(contents: list[int]) -> int:
    """Width of a table with rich's default box and padding: one space each side of a cell, a rule between cells
    and at both edges."""
    return sum(contents) + 3 * len(contents) + 1


def dropped_note(dropped: Sequence[str]) -> str:
    """One line saying which columns a narrow terminal hid, and where to see them."""
    return f"(too narrow for: {', '.join(dropped)}; widen the terminal or use --json)" if dropped else ""
