"""Box output as the kernel relays it: anything JupyterLab could run in its own origin
(HTML, Markdown, JavaScript, plotting libraries' types) moves under the BoxRun MIME type,
which the lab extension renders sanitized inline, or in a sandboxed frame of an opaque
origin where it needs script."""

from __future__ import annotations

from typing import Any

#: The MIME type whose value, ``{"data": {mime: value}}``, holds a box's active output.
MIME_TYPE = "application/vnd.boxrun.box-output+json"

#: Types JupyterLab renders without running anything of the box (text, images, an SVG as
#: an ``<img>``, a JSON tree, a widget view from comm state); relayed as they are.
INERT = frozenset({
    "text/plain",
    "text/latex",
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/bmp",
    "image/svg+xml",
    "application/json",
    "application/vnd.jupyter.widget-view+json",
})

#: Message types whose ``content["data"]`` is a MIME bundle.
BUNDLES = frozenset({"display_data", "update_display_data", "execute_result"})


def confine(data: Any) -> Any:
    """The MIME bundle ``data`` with every type but the inert ones moved into one bundle
    under :data:`MIME_TYPE` (a bundle with nothing to move is returned as it is)."""
    if not isinstance(data, dict):
        return data
    active = {mime: value for mime, value in data.items() if mime not in INERT}
    if not active:
        return data
    return {**{mime: value for mime, value in data.items() if mime in INERT},
            MIME_TYPE: {"data": active}}


def confine_message(msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
    """The content of an iopub message, its bundle confined."""
    if msg_type in BUNDLES and "data" in content:
        return {**content, "data": confine(content["data"])}
    return content


def confine_reply(content: dict[str, Any]) -> dict[str, Any]:
    """A reply's content with the bundles Lab renders as output confined: an
    ``inspect_reply``'s ``data`` and an ``execute_reply``'s pager payloads."""
    if "data" in content:
        content = {**content, "data": confine(content["data"])}
    payload = content.get("payload")
    if isinstance(payload, list):
        content = {**content, "payload": [
            {**item, "data": confine(item["data"])}
            if isinstance(item, dict) and "data" in item else item for item in payload]}
    return content
