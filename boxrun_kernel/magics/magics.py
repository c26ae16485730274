"""The IPython side of ``%boxrun`` and ``%%boxrun``."""

from __future__ import annotations

from IPython.core.magic import Magics, line_cell_magic, magics_class

from .commands import Commands
from .parser import build_parser, help_text


@magics_class
class BoxRunMagics(Magics):
    """``%boxrun`` and ``%%boxrun``, run on the host (never sent into a box)."""

    def __init__(self, shell) -> None:  # type: ignore[no-untyped-def]
        super().__init__(shell)
        self.commands = Commands()

    @line_cell_magic
    def boxrun(self, line: str, cell: str | None = None) -> None:
        if cell is None:
            self.commands.line(line)
        else:
            self.commands.cell(line, cell)

    boxrun.__doc__ = help_text(build_parser())
