"""A progress bar with a caption, for image builds and box creation."""

from __future__ import annotations

import asyncio
import html
from collections.abc import Coroutine
from typing import Any, TypeVar

import ipywidgets as w

from .render import TextSummary

T = TypeVar("T")


class Progress(TextSummary, w.HBox):
    """An ``IntProgress`` (0-100) and a caption; ``creep`` moves it while nothing is known."""

    def __init__(self, caption: str = "") -> None:
        self.bar = w.IntProgress(value=0, min=0, max=100, bar_style="info",
                                 layout=w.Layout(width="240px"))
        self.caption = w.HTML()
        super().__init__([self.bar, self.caption])
        self.update(0, caption)

    def update(self, value: int | None = None, caption: str | None = None) -> None:
        if value is not None:
            self.bar.value = max(0, min(100, value))
        if caption is not None:
            self.caption.value = html.escape(caption)
            self.text = caption

    def creep(self, limit: int = 90) -> None:
        """A step towards ``limit`` percent, shorter as it nears it (a wait of unknown length)."""
        self.update(self.bar.value + max(1, (limit - self.bar.value) // 10)
                    if self.bar.value < limit else None)

    async def during(self, coro: Coroutine[Any, Any, T], limit: int = 90) -> T:
        """Await ``coro``, creeping towards ``limit`` percent meanwhile."""
        task = asyncio.ensure_future(coro)
        while not task.done():
            await asyncio.wait({task}, timeout=0.3)
            self.creep(limit)
        return task.result()

    def finish(self, caption: str, ok: bool = True) -> None:
        self.update(100 if ok else None, caption)
        self.bar.bar_style = "success" if ok else "danger"

    def summary(self) -> str:
        return f"[{self.bar.value:3d}%] {self.text}"
