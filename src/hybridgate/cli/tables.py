"""Tables that never cut what users copy.

On a terminal: a rich table whose cells fold onto more lines when the terminal is
narrow, never "…". Piped or redirected: plain left-aligned columns as wide as their
widest cell (what ``cut``, ``awk`` and a copy-paste want), whatever the width.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]],
                title: str | None = None, styles: Sequence[str | None] | None = None,
                out: object = None) -> None:
    """Print ``rows`` under ``headers``; ``styles`` (one per row) only colour a terminal."""
    stream = out or sys.stdout
    if not getattr(stream, "isatty", lambda: False)():
        widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
        lines = [title] if title else []
        for cells in [headers, *rows]:
            lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
                         .rstrip())
        stream.write("\n".join(lines) + "\n")  # type: ignore[attr-defined]
        return
    table = Table(title=title)
    for h in headers:
        table.add_column(h, overflow="fold")
    for i, cells in enumerate(rows):
        table.add_row(*cells, style=styles[i] if styles else None)
    Console(file=stream).print(table)  # type: ignore[arg-type]
