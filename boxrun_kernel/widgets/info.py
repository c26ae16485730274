"""``BoxInfo``: one box, live, with its recent execs and interpreter sessions."""

from __future__ import annotations

import time
from typing import Any

import ipywidgets as w

from ..magics.runner import runner
from .live import LiveBoxes
from .render import badge, table, text_table

#: How many execs and sessions are listed, newest first.
RECENT = 8
#: Seconds between refreshes of the lists while metrics arrive.
REFRESH = 5.0


class BoxInfo(LiveBoxes):
    """Box ``name``: the monitor's row for it, then its recent execs and sessions with
    their status and exit codes; updates itself until closed."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.execs: list[dict[str, Any]] = []
        self.sessions: list[dict[str, Any]] = []
        self.refreshed = 0.0
        super().__init__(only=name)

    def extra(self) -> list[w.Widget]:
        self.activity = w.HTML()
        return [self.activity]

    async def reload(self) -> None:
        await super().reload()
        if not self.rows:
            self.report(f"BoxRun: no box called {self.name}")
        await self.refresh()

    async def refresh(self) -> None:
        """Reload the box's execs and sessions."""
        self.refreshed = time.monotonic()
        if not self.rows:
            self.execs, self.sessions, self.activity.value = [], [], ""
            return
        box_id = next(iter(self.rows))
        self.execs = (await self.server.get(f"/v1/boxes/{box_id}/execs"))[:RECENT]
        self.sessions = (await self.server.get(f"/v1/boxes/{box_id}/sessions"))[:RECENT]
        self.activity.value = (
            "<b>Recent execs</b>" + table(["command", "status", "exit", "started"],
                                          self._exec_rows(html=True))
            + "<b>Sessions</b>" + table(["id", "kind", "status", "started", "ended / why"],
                                        self._session_rows(html=True)))

    def _exec_rows(self, html: bool) -> list[list[Any]]:
        return [[" ".join(e["cmd"])[:60], badge(e["status"]) if html else e["status"],
                 e["exit_code"], e["created_at"]] for e in self.execs]

    def _session_rows(self, html: bool) -> list[list[Any]]:
        return [[s["id"], s["kind"], badge(s["status"]) if html else s["status"], s["created_at"],
                 s.get("error_message") or s.get("ended_at")] for s in self.sessions]

    def _lifecycle(self, event: str, data: dict[str, Any]) -> None:
        super()._lifecycle(event, data)
        if self.wanted(data["box"]):
            runner().submit(self.refresh())

    def _metrics(self, event: str, sample: dict[str, Any]) -> None:
        super()._metrics(event, sample)
        if sample.get("box_id") in self.rows and time.monotonic() - self.refreshed > REFRESH:
            runner().submit(self.refresh())

    def summary(self) -> str:
        return "\n\n".join([
            super().summary(),
            "Recent execs:\n" + text_table(["command", "status", "exit", "started"],
                                           self._exec_rows(html=False)),
            "Sessions:\n" + text_table(["id", "kind", "status", "started", "ended / why"],
                                       self._session_rows(html=False))])
