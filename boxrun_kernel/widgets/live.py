"""The base of the live widgets: rows of boxes kept current from the server's streams."""

from __future__ import annotations

import html
from collections.abc import Coroutine
from typing import Any

import ipywidgets as w

from ..client import BoxUnavailable
from ..magics.api import explain
from ..magics.runner import kernel_hook, runner
from .render import TextSummary, backend_reason, isolation
from .row import BoxRow
from .watch import Watcher

#: Seconds between metrics samples of the widgets.
INTERVAL = 2.0


class LiveBoxes(TextSummary, w.VBox):
    """A header, a row per box (every box, or just ``only``), :meth:`extra` widgets and an
    error line; updated in the background until it is closed or the kernel ends."""

    def __init__(self, only: str | None = None) -> None:
        self.server = runner().server
        self.only = only
        self.info: dict[str, Any] = {}
        self.rows: dict[str, BoxRow] = {}
        self.text_error = ""
        self.header, self.table, self.error = w.HTML(), w.VBox(), w.HTML()
        super().__init__([self.header, self.table, *self.extra(), self.error])
        try:  # loaded before it is shown, so its text summary says something
            runner().run(self.reload())
        except BoxUnavailable as exc:
            self.report(explain(exc))
        self.watcher = Watcher(self._lifecycle, self._metrics, self.report, self.reload, INTERVAL)
        self.comm.on_close(lambda _msg: self.watcher.stop())  # the frontend closed it

    def extra(self) -> list[w.Widget]:
        """Widgets under the rows (of subclasses)."""
        return []

    def wanted(self, box: dict[str, Any]) -> bool:
        return self.only is None or self.only in (box["id"], box["name"])

    async def reload(self) -> None:
        """Everything afresh (each time the lifecycle stream opens, so nothing is missed)."""
        self.info = await self.server.get("/v1/info")
        boxes = [box for box in await self.server.get("/v1/boxes") if self.wanted(box)]
        for box_id in set(self.rows) - {box["id"] for box in boxes}:
            self.rows.pop(box_id).close()
        for box in boxes:
            self.show_box(box)
        self.table.children = [self.rows[box["id"]] for box in boxes]
        self.header.value = self.headline()
        self.report("")

    def headline(self) -> str:
        info = self.info
        return (f"<div style='line-height:1.5'><b>BoxRun</b> at "
                f"{html.escape(self.server.client.where)}<br><small>"
                f"{html.escape(isolation(info))} · memory {info.get('used_memory_mb')} of "
                f"{info.get('max_memory_mb')} MiB reserved · cpu {info.get('used_cpu')} "
                f"committed of {info.get('max_committed_cpu', info.get('max_cpu'))} "
                f"({info.get('max_cpu')} cores)"
                + (f"<br>{html.escape(backend_reason(info))}" if backend_reason(info) else "")
                + "</small></div>")

    def show_box(self, box: dict[str, Any]) -> None:
        row = self.rows.get(box["id"])
        if row is None:
            row = self.rows[box["id"]] = BoxRow(box, isolation(self.info), self.act,
                                                kernel_hook() is not None, self.only is not None)
            self.table.children = [row, *self.table.children]
        row.update(box)

    def _lifecycle(self, event: str, data: dict[str, Any]) -> None:
        box = data["box"]
        if not self.wanted(box):
            return
        if event == "removed" and box["id"] in self.rows:
            row = self.rows.pop(box["id"])
            self.table.children = [r for r in self.table.children if r is not row]
            row.close()
        elif event != "removed":
            self.show_box(box)
        runner().submit(self._refresh_info())

    async def _refresh_info(self) -> None:
        self.info = await self.server.get("/v1/info")
        self.header.value = self.headline()

    def _metrics(self, event: str, sample: dict[str, Any]) -> None:
        row = self.rows.get(sample.get("box_id", ""))
        if row is not None and row.box["status"] == "running":
            row.metrics(sample)

    def act(self, name: str, action: str) -> None:
        """A button's action on box ``name``, done in the background; errors shown here."""
        if action == "use":
            hook = kernel_hook()
            if hook is not None:
                hook(name)
            return
        if action == "remove":
            self.attempt(self.server.remove(name, force=True))
        else:
            self.attempt(self._act(name, action))

    async def _act(self, name: str, action: str) -> None:
        self.show_box(await self.server.act(name, action))

    def attempt(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` in the background; a server error shows in the widget, in words."""
        async def run() -> None:
            try:
                self.report("")
                await coro
            except BoxUnavailable as exc:
                self.report(explain(exc))
        runner().submit(run())

    def report(self, message: str) -> None:
        """Show ``message`` (a server error, in words) in the widget; "" clears it."""
        self.text_error = message
        self.error.value = message and f"<pre style='color:#c62828;white-space:pre-wrap'>" \
                           f"{html.escape(message)}</pre>"

    def summary(self) -> str:
        lines = [f"BoxRun at {self.server.client.where} · isolation: {isolation(self.info)}",
                 *([backend_reason(self.info)] if backend_reason(self.info) else [])]
        lines += [row.summary() for row in self.rows.values()] or ["(no boxes)"]
        return "\n".join(lines + ([f"error: {self.text_error}"] if self.text_error else []))

    def close(self) -> None:
        self.watcher.stop()
        for row in self.rows.values():
            row.close()
        super().close()
