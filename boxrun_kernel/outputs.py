"""Box output as the kernel relays it: anything JupyterLab could run in its own origin
(HTML, Markdown, JavaScript, plotting libraries' types) moves under the BoxRun MIME type,
which the lab extension renders sanitized inline, or in a sandboxed frame of an opaque
origin where it needs script; HTML that ipywidgets would put in the page is sanitized."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bleach.sanitizer import Cleaner

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


#: Widget models whose ``value`` ipywidgets puts in the page as HTML, unsanitized.
HTML_WIDGETS = frozenset({"HTMLModel", "HTMLMathModel"})


@cache
def cleaner() -> Cleaner:
    """What an HTML widget's value may hold: markup for text, tables and images, no script,
    event handlers, forms, frames or ``javascript:`` links. Made at first use: importing
    bleach is 40 ms of a kernel's start, and most kernels never show an HTML widget."""
    import bleach  # noqa: PLC0415
    from bleach.css_sanitizer import CSSSanitizer  # noqa: PLC0415

    return bleach.sanitizer.Cleaner(
        tags=bleach.sanitizer.ALLOWED_TAGS | {
            "p", "div", "span", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "sub",
            "sup", "small", "u", "s", "del", "ins", "mark", "kbd", "samp", "dl", "dt", "dd",
            "table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption", "img", "figure",
            "figcaption", "details", "summary"},
        attributes={"*": ["class", "title", "style", "align"], "a": ["href", "target"],
                    "img": ["src", "alt", "width", "height"], "th": ["colspan", "rowspan"],
                    "td": ["colspan", "rowspan"]},
        protocols={"http", "https", "mailto", "data"},
        css_sanitizer=CSSSanitizer(),
        strip=True,
    )


def _html_model(name: Any) -> bool:
    """Whether a model name (from a box: any JSON) may be an HTML widget's: the page looks
    up a name that is not a string by its text (``["HTMLModel"]`` is ``HTMLModel``)."""
    return name is not None and (not isinstance(name, str) or name in HTML_WIDGETS)


class WidgetGuard:
    """Cleans what a box's widgets would have ipywidgets put in the page as it is: the
    value of ``HTML``/``HTMLMath`` widgets (sanitized) and the outputs an ``Output``
    widget's state lists (confined), in a widget's own messages and in the states a
    reloaded page builds its widgets from; everything else about widgets passes unchanged."""

    def __init__(self) -> None:
        self._html: set[str] = set()  # comm ids of the box's HTML widgets

    def message(self, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
        """The content of an iopub comm message from the box, cleaned."""
        comm_id = content.get("comm_id")
        comm_id = comm_id if isinstance(comm_id, str) else ""  # never a key a box chose
        if msg_type == "comm_close":
            self._html.discard(comm_id)
        data = content.get("data")
        if msg_type not in ("comm_open", "comm_msg") or not isinstance(data, dict):
            return content
        states = data.get("states")
        if isinstance(states, dict):  # a control comm's ``update_states``: every widget
            return {**content, "data": {**data, "states": {
                model_id: self._entry(model_id, entry) for model_id, entry in states.items()}}}
        state = data.get("state")
        if not isinstance(state, dict):
            return content
        if msg_type == "comm_open" and _html_model(state.get("_model_name")):
            self._html.add(comm_id)
        cleaned = self._clean(comm_id, state)
        return content if cleaned is state else {**content, "data": {**data, "state": cleaned}}

    def _entry(self, model_id: str, entry: Any) -> Any:
        """A widget's entry of ``update_states`` (its model name beside its state), cleaned."""
        if not isinstance(entry, dict) or not isinstance(entry.get("state"), dict):
            return entry
        return {**entry, "state": self._clean(model_id, entry["state"],
                                              _html_model(entry.get("model_name")))}

    def _clean(self, comm_id: Any, state: dict[str, Any], html: bool = False) -> dict[str, Any]:
        """``state`` of widget ``comm_id`` cleaned: an HTML widget's value (one opened as
        such, or a state that says it is one: a reloaded page makes its model from that) as
        sanitized text, an Output widget's outputs confined."""
        cleaned: dict[str, Any] = {}
        if "value" in state and (html or comm_id in self._html
                                 or _html_model(state.get("_model_name"))):
            # Not text (a list, say): the page would join it into markup unsanitized.
            value = state["value"]
            cleaned["value"] = cleaner().clean(value) if isinstance(value, str) else ""
        if isinstance(state.get("outputs"), list):
            cleaned["outputs"] = [{**out, "data": confine(out["data"])}
                                  if isinstance(out, dict) and "data" in out else out
                                  for out in state["outputs"]]
        return {**state, **cleaned} if cleaned else state
