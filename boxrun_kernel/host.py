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
        self._controls: deque[str] = deque(maxlen=32)  # the frontends' control comms

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

    def note_control(self, msg_type: str, content: dict[str, Any]) -> None:
        """Note a widget manager's control comm as it opens (it goes on into the box): a
        reloaded page asks on it for every widget's state at once."""
        if msg_type == "comm_open" and content.get("target_name") == CONTROL_TARGET:
            self._controls.append(content.get("comm_id", ""))

    def answer(self, msg_type: str, content: dict[str, Any], buffers: list[bytes]
               ) -> list[tuple[str, dict[str, Any], list[bytes]]]:
        """The messages to send in place of a box's message: on a control comm, the box's
        ``update_states`` with the host's widgets added, or, before a box's refusal (no
        ipywidgets there), the host's alone; any other message as it is. One answer for
        all, so a reloaded page gets every widget at once (asked per comm, one widget closed
        meanwhile left the page waiting for all of them)."""
        message = [(msg_type, content, buffers)]
        comm_id, data = content.get("comm_id", ""), content.get("data")
        if comm_id not in self._controls:
            return message
        if msg_type == "comm_close":
            self._controls.remove(comm_id)
            states, paths, parts = self.widget_states()
            if not states:
                return message
            update = {"method": "update_states", "states": states, "buffer_paths": paths}
            return [("comm_msg", {"comm_id": comm_id, "data": update}, parts), *message]
        if (msg_type == "comm_msg" and isinstance(data, dict)
                and data.get("method") == "update_states" and isinstance(data.get("states"), dict)):
            update, buffers = self._merged(data, buffers)
            return [(msg_type, {**content, "data": update}, buffers)]
        return message

    def _merged(self, data: dict[str, Any], buffers: list[bytes]
                ) -> tuple[dict[str, Any], list[bytes]]:
        """A box's ``update_states`` and its buffers with the host's widgets added (theirs
        win over a box's claim to the same id)."""
        states, paths, parts = self.widget_states()
        box_paths = data.get("buffer_paths")
        kept = [(path, part) for path, part in zip(
            box_paths if isinstance(box_paths, list) else [], buffers, strict=False)
            if isinstance(path, list) and path and str(path[0]) not in states]
        merged = {**{i: s for i, s in data["states"].items() if i not in states}, **states}
        return ({**data, "states": merged, "buffer_paths": [p for p, _ in kept] + paths},
                [b for _, b in kept] + parts)

    def widget_states(self) -> tuple[dict[str, Any], list[list[Any]], list[Any]]:
        """The host's widgets as ipywidgets answers ``request_states`` (its own helpers):
        their states, and the paths and contents of their binary parts."""
        if self._commands is None:
            return {}, [], []
        from ipywidgets.widgets.widget import _instances, _remove_buffers  # noqa: PLC0415

        states = {widget.model_id: {"model_name": widget._model_name,
                                    "model_module": widget._model_module,
                                    "model_module_version": widget._model_module_version,
                                    "state": widget.get_state()}
                  for widget in list(_instances.values()) if widget.comm is not None}
        return _remove_buffers(states)
