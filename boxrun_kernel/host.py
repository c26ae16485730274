"""The host side of the BoxRun kernel: which parts of a cell run here (its ``%boxrun``
lines, ``%%boxrun NAME``), and the ``%boxrun`` commands with the widgets they show."""

from __future__ import annotations

import re
import shlex
import signal
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from comm.base_comm import CommManager

    from .magics.commands import Commands

#: An error of the host's part of a cell: ``ename``, ``evalue``, ``traceback``.
Failure = tuple[str, str, list[str] | None]

LINE_MAGIC = re.compile(r"%boxrun(?![\w%])(.*)")
#: The widget manager's comm asking for every widget's state at once (ipywidgets 8).
CONTROL_TARGET = "jupyter.widget.control"
CELL_MAGIC = re.compile(r"%%boxrun(?![\w%])(.*)")


class MisplacedMagic(ValueError):
    """A ``%boxrun`` line after the cell's code, or a malformed ``%%boxrun`` line."""


@dataclass(frozen=True)
class Cell:
    """A cell as the BoxRun kernel runs it: ``magics`` (the arguments of its leading
    ``%boxrun`` lines) here first, then ``code`` in the box, where the magic lines are
    comments; ``box``: the box a ``%%boxrun NAME`` cell names."""

    code: str
    magics: list[str] = field(default_factory=list)
    box: str | None = None

    @property
    def host_only(self) -> bool:
        """Whether nothing but comments is left for the box."""
        return bool(self.magics) and all(
            not line.strip() or line.lstrip().startswith("#") for line in self.code.split("\n"))


def split_cell(code: str) -> Cell:
    """Split ``code`` into its host and box parts; :class:`MisplacedMagic` if it mixes them
    in a way that has no clear order."""
    if "%boxrun" not in code:
        return Cell(code)
    first, _, body = code.partition("\n")
    cell = CELL_MAGIC.fullmatch(first.strip())
    if cell:
        names = shlex.split(cell[1])
        if len(names) > 1:
            raise MisplacedMagic("usage: %%boxrun [NAME]\n%%boxrun: error: one box name at most")
        return Cell(body, box=names[0] if names else None)
    magics: list[str] = []
    lines: list[str] = []
    leading = True
    for number, line in enumerate(code.split("\n"), 1):
        magic = LINE_MAGIC.fullmatch(line.strip())
        if magic and leading:
            magics.append(magic[1].strip())
            lines.append("# " + line)
            continue
        leading = leading and (not line.strip() or line.lstrip().startswith("#"))
        if magic and not line[:1].isspace():
            raise MisplacedMagic(f"%boxrun runs on the host before the cell's code goes to the "
                                 f"box: move line {number} ({line.strip()}) to the top of the "
                                 "cell, or into a cell of its own")
        lines.append(line)
    return Cell("\n".join(lines), magics)


class Host:
    """Runs ``%boxrun`` lines in the kernel's process; ``show`` publishes a display bundle
    (the kernel has no IPython shell to display with); ``current``: the box cells run in."""

    def __init__(self, show: Callable[[dict[str, Any], dict[str, Any]], None],
                 current: Callable[[], str]) -> None:
        self.show, self.current = show, current
        self.busy = False
        self._commands: Commands | None = None
        self._refused: deque[str] = deque(maxlen=32)  # control comms refused here

    def run(self, lines: list[str], parent: dict[str, Any]) -> Failure | None:
        """Run ``%boxrun`` lines, printing under ``parent``; a failure if one is interrupted
        or breaks."""
        for stream in (sys.stdout, sys.stderr):
            if hasattr(stream, "set_parent"):
                stream.set_parent(parent)
        commands = self.commands()
        self.busy = True
        try:
            for line in lines:
                commands.line(line)
        except KeyboardInterrupt:
            return "KeyboardInterrupt", "%boxrun was interrupted", None
        except Exception as exc:  # a bug of a command: its traceback, as IPython shows it
            return type(exc).__name__, str(exc), traceback.format_exception(exc)
        finally:
            self.busy = False
            sys.stdout.flush()
            sys.stderr.flush()
        return None

    def interrupt(self) -> None:
        """Interrupt the ``%boxrun`` line running in the main thread."""
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    def commands(self) -> Commands:
        """The ``%boxrun`` commands (ipywidgets is imported only when they are first used)."""
        if self._commands is None:
            from .magics.commands import Commands  # noqa: PLC0415

            self._commands = Commands(self.display, self.current())
        return self._commands

    def display(self, obj: Any) -> None:
        """IPython's ``display(obj)``, through ``show``."""
        from IPython.core.formatters import DisplayFormatter  # noqa: PLC0415

        self.show(*DisplayFormatter().format(obj))

    def moved(self, name: str) -> None:
        """Cells now run in box ``name``: the commands' current box."""
        if self._commands is not None:
            self._commands.current = name

    @property
    def comms(self) -> CommManager | None:
        """The comms of the host's widgets, once ``%boxrun`` has run."""
        if self._commands is None:
            return None
        import comm  # noqa: PLC0415

        return comm.get_comm_manager()

    def refuses(self, msg_type: str, content: dict[str, Any]) -> bool:
        """Whether a frontend's comm message stops here: a widget manager's control comm
        while host widgets exist (the box's ipywidgets would answer it without them, so
        they would not come back after a page reload; refused, it makes the manager ask
        each comm ``comm_info`` lists, the box's and the host's), and what follows it."""
        comm_id = content.get("comm_id", "")
        if msg_type == "comm_open" and content.get("target_name") == CONTROL_TARGET:
            manager = self.comms
            if manager is not None and manager.comms:
                self._refused.append(comm_id)
        return comm_id in self._refused
