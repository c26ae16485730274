"""One box as a row of widgets, laid out for a notebook column (about 700 px, readable at
400): a line with the name, status badge and live cpu and memory bars, and an expandable
part with the details, a sparkline and icon buttons."""

from __future__ import annotations

import html
from collections import deque
from collections.abc import Callable
from typing import Any

import ipywidgets as w

from .render import badge, meter, mib, middle, sparkline

#: Samples kept for the sparkline: five minutes at the monitors' 2 s interval.
HISTORY = 150
Act = Callable[[str, str], None]
#: The row's buttons: action, icon, word, tooltip.
BUTTONS = (("start", "play", "start", "Start the box"),
           ("stop", "stop", "stop", "Stop the box (its disk is kept)"),
           ("remove", "trash", "remove", "Remove the box and its disk"))
USE = ("use", "arrow-right", "use here", "Run this notebook's cells in this box")
#: Characters of a box name shown on its line (cut in the middle; whole on hover).
NAME_CHARS = 20
WRAP = {"flex_flow": "row wrap", "align_items": "center", "width": "100%"}


def _button(word: str, icon: str, tooltip: str, **kw: Any) -> w.Button:
    """A button with an icon, a short word it never truncates, and a tooltip."""
    return w.Button(description=word, icon=icon, tooltip=tooltip,
                    layout=w.Layout(width="auto", margin="2px 6px 2px 0"), **kw)


class BoxRow(w.VBox):
    """A box's row; its buttons call ``act(name, action)`` with ``start``, ``stop``,
    ``remove`` (after a confirmation) or ``use`` (shown when ``can_use``)."""

    def __init__(self, box: dict[str, Any], isolation: str, act: Act, can_use: bool,
                 expanded: bool = False) -> None:
        self.box, self.isolation, self.act = box, isolation, act
        self.cpu_history: deque[float] = deque(maxlen=HISTORY)
        self.sample: dict[str, Any] = {}
        # A word beside the icon: an icon's glyph alone would be the button's accessible name.
        self.toggle = w.Button(description="details", icon="chevron-right",
                               tooltip="Show details and actions",
                               layout=w.Layout(width="auto", margin="2px 6px 2px 0"))
        self.toggle.on_click(lambda _: self.expand(self.details.layout.display == "none"))
        self.title = w.HTML(layout=w.Layout(flex="1 1 150px", min_width="110px", height="28px"))
        self.badge = w.HTML(layout=w.Layout(width="76px"))
        self.cpu = w.HTML(layout=w.Layout(width="120px", margin="2px 6px 2px 0"))
        self.memory = w.HTML(layout=w.Layout(width="120px", margin="2px 0"))
        self.about, self.spark = w.HTML(layout=w.Layout(flex="1 1 240px")), w.HTML()
        actions = [*BUTTONS, USE] if can_use else BUTTONS
        self.buttons = {action: _button(word, icon, tip) for action, icon, word, tip in actions}
        for action, button in self.buttons.items():
            button.on_click(lambda _, action=action: self._clicked(action))
        self.confirm = w.HBox([w.HTML(), _button("remove", "trash", "Remove it now",
                                                 button_style="danger"),
                               _button("cancel", "times", "Keep the box")],
                              layout=w.Layout(**WRAP))
        self.confirm.children[1].on_click(lambda _: self._confirmed(True))
        self.confirm.children[2].on_click(lambda _: self._confirmed(False))
        self.confirm.layout.display = "none"
        line = w.HBox([self.toggle, self.title, self.badge, self.cpu, self.memory],
                      layout=w.Layout(**WRAP))
        self.details = w.VBox([w.HBox([self.about, self.spark], layout=w.Layout(**WRAP)),
                               w.HBox(list(self.buttons.values()), layout=w.Layout(**WRAP)),
                               self.confirm],
                              layout=w.Layout(margin="0 0 6px 24px", display="none"))
        super().__init__([line, self.details], layout=w.Layout(
            border_bottom="1px solid rgba(127,127,127,.25)", padding="2px 0"))
        self.expand(expanded)
        self.update(box)

    def expand(self, open_: bool) -> None:
        """Show or hide the details and actions."""
        self.details.layout.display = "flex" if open_ else "none"
        self.toggle.icon = "chevron-down" if open_ else "chevron-right"
        self.toggle.tooltip = ("Hide details and actions" if open_
                               else "Show details and actions")

    def _clicked(self, action: str) -> None:
        if action == "remove":
            self.confirm.children[0].value = (f"Remove box <b>{html.escape(self.name)}</b> "
                                              f"and its disk?")
            self.confirm.layout.display = "flex"
        else:
            self.act(self.box["name"], action)

    def _confirmed(self, yes: bool) -> None:
        self.confirm.layout.display = "none"
        if yes:
            self.act(self.box["name"], "remove")

    @property
    def name(self) -> str:
        return self.box["name"] or self.box["id"]

    def update(self, box: dict[str, Any]) -> None:
        """Show the box as the server last described it."""
        self.box = box
        status = box["status"]
        name, image = html.escape(self.name), html.escape(box["image"])
        # Out of the flow (the widget's content is positioned), so a long name never
        # widens the line: cut in the middle first, then at the end if still too long.
        self.title.value = (
            f'<div title="{name} ({image})" style="position:absolute;left:0;right:0;'
            f'white-space:nowrap;overflow:hidden;text-overflow:ellipsis">'
            f'<b>{html.escape(middle(self.name, NAME_CHARS))}</b></div>')
        self.badge.value = badge(status)
        error = box.get("error_message")
        self.about.value = (
            f"<div style='line-height:1.5'><small>{image} · {box['cpu']} cpu (ceiling and weight) · "
            f"{box['memory_mb']} MiB reserved · {html.escape(self.isolation)}"
            + (f"<br><span style='color:#c62828'>{html.escape(error)}"
               f" ({html.escape(box.get('error_code') or '')})</span>" if error else "")
            + "</small></div>")
        self.buttons["start"].disabled = status != "stopped"
        self.buttons["stop"].disabled = status != "running"
        if "use" in self.buttons:
            self.buttons["use"].disabled = status != "running"
        if status != "running":
            self.sample = {}
        if not self.sample:  # until the first sample of a running box
            self.cpu.value = meter("cpu", 0, f"{box['cpu']} cpu at most")
            self.memory.value = meter("memory", 0, f"{box['memory_mb']} MiB at most")

    def metrics(self, sample: dict[str, Any]) -> None:
        """Show a metrics sample of the box."""
        self.sample = sample
        cores = sample.get("cpu_limit") or self.box["cpu"]
        percent = sample.get("cpu_percent") or 0.0
        limit = sample.get("memory_limit_bytes") or self.box["memory_mb"] * 2**20
        used = sample.get("memory_bytes") or 0
        self.cpu_history.append(percent)
        self.cpu.value = meter(f"cpu {percent:.0f}%", percent / (cores * 100),
                               f"cpu {percent:.0f}% of {cores * 100}% ({cores} cpu)")
        self.memory.value = meter(mib(used), used / limit, f"memory {mib(used)} of {mib(limit)}")
        self.spark.value = ("<small style='opacity:.7'>cpu, last 5 min</small> "
                            + sparkline(list(self.cpu_history), cores * 100))

    def close(self) -> None:
        line, (about, actions, confirm) = self.children[0], self.details.children
        for widget in (*line.children, *about.children, *actions.children, *confirm.children,
                       line, about, actions, confirm, self.details):
            widget.close()
        super().close()

    def summary(self) -> str:
        box, sample = self.box, self.sample
        live = (f"  cpu {sample.get('cpu_percent') or 0:.0f}%  memory "
                f"{mib(sample.get('memory_bytes'))}" if sample else "")
        why = f"  ({box['error_message']})" if box.get("error_message") else ""
        return (f"{box['name']:<20} {box['status']:<9} {box['image']:<14} "
                f"{box['cpu']} cpu / {box['memory_mb']} MiB{live}{why}")
