"""One box as a row of widgets: status badge, reservations, live bars, sparkline, buttons."""

from __future__ import annotations

import html
from collections import deque
from collections.abc import Callable
from typing import Any

import ipywidgets as w

from .render import badge, mib, sparkline

#: Samples kept for the sparkline: five minutes at the monitors' 2 s interval.
HISTORY = 150
Act = Callable[[str, str], None]


def _bar(description: str) -> w.FloatProgress:
    return w.FloatProgress(value=0, min=0, max=100, description=description,
                           style={"description_width": "70px"}, layout=w.Layout(width="210px"))


class BoxRow(w.VBox):
    """A box's row; its buttons call ``act(name, action)`` with ``start``, ``stop``,
    ``remove`` (after a confirmation) or ``use`` (shown when ``can_use``)."""

    def __init__(self, box: dict[str, Any], isolation: str, act: Act, can_use: bool) -> None:
        self.box, self.isolation, self.act = box, isolation, act
        self.cpu_history: deque[float] = deque(maxlen=HISTORY)
        self.sample: dict[str, Any] = {}
        self.title, self.badge, self.reserved, self.spark = w.HTML(), w.HTML(), w.HTML(), w.HTML()
        self.problem = w.HTML()  # why the box died or failed to start, from the server
        self.cpu, self.memory = _bar("cpu"), _bar("memory")
        self.buttons = {name: self._button(name, icon) for name, icon in
                        (("start", "play"), ("stop", "stop"), ("remove", "trash"))}
        if can_use:
            self.buttons["use"] = self._button("use", "arrow-right", "use in this kernel")
        self.confirm = w.HBox([w.HTML(), w.Button(description="remove", button_style="danger"),
                               w.Button(description="cancel")])
        self.confirm.children[1].on_click(lambda _: self._confirmed(True))
        self.confirm.children[2].on_click(lambda _: self._confirmed(False))
        self.confirm.layout.display = "none"
        line = w.HBox([self.title, self.badge, self.reserved, self.cpu, self.memory, self.spark,
                       *self.buttons.values()], layout=w.Layout(align_items="center"))
        for part, width in ((self.title, "170px"), (self.badge, "80px"), (self.reserved, "190px")):
            part.layout.width = width
        super().__init__([line, self.confirm, self.problem])
        self.update(box)

    def _button(self, action: str, icon: str, text: str = "") -> w.Button:
        button = w.Button(description=text or action, icon=icon, tooltip=f"{action} the box",
                          layout=w.Layout(width="auto"))
        if action == "remove":
            button.on_click(lambda _: self._ask())
        else:
            button.on_click(lambda _: self.act(self.box["name"], action))
        return button

    def _ask(self) -> None:
        self.confirm.children[0].value = (f"Remove box <b>{html.escape(self.box['name'])}</b> "
                                          f"and its disk?")
        self.confirm.layout.display = "flex"

    def _confirmed(self, yes: bool) -> None:
        self.confirm.layout.display = "none"
        if yes:
            self.act(self.box["name"], "remove")

    def update(self, box: dict[str, Any]) -> None:
        """Show the box as the server last described it."""
        self.box = box
        status = box["status"]
        self.title.value = (f"<b>{html.escape(box['name'] or box['id'])}</b><br>"
                            f"<small>{html.escape(box['image'])}</small>")
        self.badge.value = badge(status)
        self.reserved.value = (f"{box['cpu']} cpu · {box['memory_mb']} MiB reserved<br>"
                               f"<small>{html.escape(self.isolation)}</small>")
        why = box.get("error_message")
        self.problem.value = "" if not why else (
            f"<small style='color:#c62828'>{html.escape(why)} "
            f"({html.escape(box.get('error_code') or '')})</small>")
        self.buttons["start"].disabled = status != "stopped"
        self.buttons["stop"].disabled = status != "running"
        if "use" in self.buttons:
            self.buttons["use"].disabled = status != "running"
        if status != "running":
            self.sample = {}
            self.cpu.value = self.memory.value = 0
            self.cpu.description, self.memory.description = "cpu", "memory"

    def metrics(self, sample: dict[str, Any]) -> None:
        """Show a metrics sample of the box."""
        self.sample = sample
        cores = sample.get("cpu_limit") or self.box["cpu"]
        percent = sample.get("cpu_percent") or 0.0
        limit = sample.get("memory_limit_bytes") or self.box["memory_mb"] * 2**20
        used = sample.get("memory_bytes") or 0
        self.cpu_history.append(percent)
        self.cpu.max, self.cpu.value = cores * 100, min(percent, cores * 100)
        self.cpu.description = f"cpu {percent:.0f}%"
        self.memory.max, self.memory.value = limit / 2**20, min(used, limit) / 2**20
        self.memory.description = mib(used)
        self.spark.value = sparkline(list(self.cpu_history), cores * 100)

    def close(self) -> None:
        line = self.children[0]
        for widget in (*line.children, *self.confirm.children, line, self.confirm, self.problem):
            widget.close()
        super().close()

    def summary(self) -> str:
        box, sample = self.box, self.sample
        live = (f"  cpu {sample.get('cpu_percent') or 0:.0f}%  memory "
                f"{mib(sample.get('memory_bytes'))}" if sample else "")
        why = f"  ({box['error_message']})" if box.get("error_message") else ""
        return (f"{box['name']:<20} {box['status']:<9} {box['image']:<14} "
                f"{box['cpu']} cpu / {box['memory_mb']} MiB{live}{why}")
