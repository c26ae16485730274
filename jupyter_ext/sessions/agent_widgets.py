"""Loaded by the box's ipykernel as it starts (see ``agent.LAUNCH``; stdlib only).

JupyterLab's widget manager opens its ``jupyter.widget.control`` comm as soon as it
connects, before any cell has imported ipywidgets. Unanswered, the kernel logs
``No such comm target`` and then ``No such comm`` for each message of that comm, and
ipykernel relays its stderr under the next cell. Instead, ipywidgets' targets are held
here: the first comm opened for one imports ipywidgets (which registers its own) and
goes to it; without ipywidgets the comm is closed, which the frontend takes as "no
widgets here".
"""

from __future__ import annotations

from typing import Any

TARGETS = ("jupyter.widget", "jupyter.widget.control")


def hold_widget_targets(manager: Any) -> None:
    """Register placeholders for ipywidgets' comm targets on ``manager`` (a CommManager)."""

    def opened(comm: Any, msg: dict[str, Any]) -> None:
        for name in TARGETS:
            if manager.targets.get(name) is opened:
                manager.unregister_target(name, opened)
        try:
            import ipywidgets  # noqa: F401, PLC0415 - registers ipywidgets' targets
        except ImportError:
            pass
        handler = manager.targets.get(msg["content"]["target_name"])
        if handler is None:
            comm.close()
        else:
            handler(comm, msg)

    for name in TARGETS:
        manager.targets.setdefault(name, opened)
