"""HTML pieces of the widgets (badges, sparklines, tables) and their plain-text fallback."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

#: Badge colours by box (or exec, session) status.
COLOURS = {"running": "#2e7d32", "succeeded": "#2e7d32", "idle": "#2e7d32",
           "busy": "#1565c0", "creating": "#1565c0", "starting": "#1565c0",
           "stopped": "#757575", "canceled": "#757575", "removed": "#757575",
           "failed": "#c62828", "dead": "#c62828"}
ISOLATION = {"vm": "micro-VM (hardware virtualisation)",
             "gvisor": "gVisor user-space kernel",
             "namespace": "namespace sandbox (shared kernel)"}


def badge(status: str) -> str:
    """A coloured pill saying ``status``."""
    colour = COLOURS.get(status, "#ef6c00")
    return (f'<span style="background:{colour};color:white;border-radius:8px;'
            f'padding:1px 8px;font-size:90%">{html.escape(status)}</span>')


def isolation(info: dict[str, Any]) -> str:
    """The server's isolation level in words, from ``/v1/info``."""
    level = info.get("isolation") or "unknown"
    return f"{ISOLATION.get(level, level)}, {info.get('backend', '?')} backend"


def backend_reason(info: dict[str, Any]) -> str:
    """Why the server runs its backend (for ``auto``: why no stronger one), or ""."""
    return str(info.get("backend_reason") or "")


def middle(text: str, limit: int = 30) -> str:
    """``text`` cut in the middle to ``limit`` characters: a box name's distinguishing end
    (``jupyter-<kernel id>``) stays readable."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return f"{text[:head]}…{text[len(text) - (limit - 1 - head):]}"


def meter(label: str, fraction: float, tip: str) -> str:
    """A bar filled to ``fraction`` (0..1) with ``label`` written on it; ``tip`` on hover."""
    percent = max(0.0, min(fraction, 1.0)) * 100
    return (f'<div title="{html.escape(tip)}" style="position:relative;height:18px;'
            f'line-height:18px;font-size:11px;border-radius:3px;overflow:hidden;'
            f'background:rgba(127,127,127,.18)"><div style="position:absolute;top:0;left:0;'
            f'bottom:0;width:{percent:.1f}%;background:rgba(21,101,192,.45)"></div>'
            f'<span style="position:relative;padding:0 6px;white-space:nowrap">'
            f'{html.escape(label)}</span></div>')


def mib(n_bytes: float | None) -> str:
    return "-" if n_bytes is None else f"{n_bytes / 2**20:.0f} MiB"


def sparkline(values: Sequence[float], top: float, width: int = 120, height: int = 24) -> str:
    """A tiny inline SVG of ``values`` (oldest first) on a scale of 0..``top``."""
    if len(values) < 2:
        return f'<svg width="{width}" height="{height}"></svg>'
    step = width / (len(values) - 1)
    points = " ".join(f"{i * step:.1f},{height - min(v / (top or 1), 1) * (height - 2) - 1:.1f}"
                      for i, v in enumerate(values))
    return (f'<svg width="{width}" height="{height}" style="vertical-align:middle;'
            f'border-bottom:1px solid rgba(127,127,127,.4)">'
            f'<polyline fill="none" stroke="#1565c0" stroke-width="1.5" points="{points}"/></svg>')


def table(head: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A small HTML table; a cell already holding markup starts with ``<``."""
    def cell(value: Any, tag: str) -> str:
        text = str(value if value is not None else "-")
        return f"<{tag} style='padding:0 8px;text-align:left'>" \
               f"{text if text.startswith('<') else html.escape(text)}</{tag}>"
    lines = ["<tr>" + "".join(cell(h, "th") for h in head) + "</tr>"]
    lines += ["<tr>" + "".join(cell(v, "td") for v in row) + "</tr>" for row in rows]
    return "<table style='font-size:90%'>" + "".join(lines) + "</table>"


def text_table(head: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """The same rows as aligned plain text (``%boxrun ls``, consoles, nbconvert)."""
    body = [[str(v if v is not None else "-") for v in row] for row in rows]
    widths = [max(len(r[i]) for r in [list(head), *body]) for i in range(len(head))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
                     for r in [list(head), *body])


class TextSummary:
    """Mixin: a widget whose ``text/plain`` is :meth:`summary`, for frontends without
    widgets (nbconvert, a terminal console)."""

    def summary(self) -> str:
        raise NotImplementedError

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        bundle = super()._repr_mimebundle_(**kwargs)  # type: ignore[misc]
        if bundle is not None:
            bundle["text/plain"] = self.summary()
        return bundle

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.summary())
