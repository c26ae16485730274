"""What client commands print: tables, JSON, errors, and progress bars."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from tqdm import tqdm

from ...core.boxlog import escape
from ...core.errors import BoxRunError

#: Hints for errors a user can fix with another command, as the reference CLI gives them.
HINTS = {
    "BOX_NOT_RUNNING": "start the box first: boxrun start BOX",
    "BOX_ALREADY_RUNNING": "stop it first (boxrun stop BOX), or remove it with rm -f",
    "NAME_ALREADY_EXISTS": "use another name, or remove that box: boxrun rm -f NAME",
    "BOX_NOT_FOUND": "list the boxes: boxrun ls",
    "UNAUTHORIZED": "set BOXRUN_TOKEN (or BOXRUN_URL=http://:TOKEN@HOST:PORT)",
}


def error(err: BoxRunError) -> int:
    """Say ``err`` on stderr, in words with its code; the exit status 1."""
    print(f"boxrun: {err.code}: {escape(err.message)}", file=sys.stderr)
    if hint := HINTS.get(err.code):
        print(f"  hint: {hint}", file=sys.stderr)
    return 1


def note(text: str) -> None:
    """A message for the user, on stderr (stdout carries what scripts read)."""
    print(f"boxrun: {text}", file=sys.stderr, flush=True)


def as_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]],
          right: frozenset[int] = frozenset()) -> None:
    """Columns as wide as their widest cell; the cells escaped (names and images are
    what other callers chose)."""
    cells = [[escape("" if c is None else str(c)) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()
    print(line(headers))
    for row in cells:
        print(line(row))


def progress(total: int, desc: str, always: bool = False) -> tqdm:
    """A bar on stderr, as ``boxrun image build`` shows; silent unless stderr is a terminal
    or ``always`` (a build's bar lines are what ``%boxrun build`` reads from a pipe)."""
    return tqdm(total=total, desc=desc, file=sys.stderr,
                disable=not (always or sys.stderr.isatty()),
                bar_format="{desc:<44.44} {percentage:3.0f}%|{bar}| {elapsed}")
