"""Session records, their events, and the validation of the requests about them."""

from __future__ import annotations

import json
from base64 import b64decode
from binascii import Error as Base64Error
from dataclasses import asdict, dataclass, field
from typing import Any

from ..core.errors import validation
from ..core.models import now

KINDS = ("auto", "ipykernel", "python", "shell")
CHANNELS = ("shell", "control", "stdin")
#: The longest session id ``attach`` may name.
MAX_ID = 64


@dataclass
class Session:
    """A session as stored and as the API shows it."""

    id: str
    box_id: str
    kind: str
    status: str
    cwd: str
    created_at: str = field(default_factory=now)
    ended_at: str | None = None
    error_message: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The API's session object."""
        return asdict(self)


@dataclass(frozen=True)
class SessionEvent:
    """One SSE event of a session: a Jupyter message, or the session's own lifecycle."""

    seq: int
    event: str
    msg_type: str
    data: str

    @classmethod
    def of(cls, seq: int, record: dict[str, Any]) -> SessionEvent:
        """The event numbered ``seq`` carrying ``record`` (``channel``, ``msg_type``, …)."""
        data = json.dumps({"seq": seq, **record}, default=str)
        return cls(seq, record["channel"], record["msg_type"], data)

    def to_json(self) -> dict[str, Any]:
        """The SSE ``data`` payload."""
        return json.loads(self.data)

    def json_text(self) -> str:
        """The SSE ``data`` payload as JSON text: ``data`` as stored, not parsed again
        (a message of megabytes costs no second round of JSON per subscriber)."""
        return self.data


def lifecycle(msg_type: str, session: Session, metadata: dict[str, Any] | None = None
              ) -> dict[str, Any]:
    """The record of a ``session`` event (``ready``, ``restarted``, ``dead``)."""
    return {"channel": "session", "msg_type": msg_type, "msg_id": None, "parent_msg_id": None,
            "content": session.to_json(), "metadata": metadata or {}, "buffers": []}


def parse_start(body: dict[str, Any]) -> tuple[str, str | None, dict[str, str]]:
    """``kind``, ``cwd`` and ``env`` of a ``POST …/sessions`` body."""
    kind = body.get("kind") or "auto"
    if kind not in KINDS:
        raise validation(f"'kind' must be one of {', '.join(KINDS)}")
    cwd = body.get("cwd")
    if cwd is not None and (not isinstance(cwd, str) or not cwd.startswith("/")):
        raise validation("'cwd' must be an absolute path")
    env = body.get("env") or {}
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise validation("'env' must be an object of strings")
    return kind, cwd, env


def parse_attach(body: dict[str, Any]) -> str | None:
    """The session named by ``attach`` in a ``POST …/sessions`` body, or None; an attached
    session takes its interpreter as it runs (its kind and folder), so nothing else goes."""
    if "attach" not in body:
        return None
    source = body["attach"]
    if not isinstance(source, str) or not 0 < len(source) <= MAX_ID:
        raise validation(f"'attach' must be a session id (a string of 1-{MAX_ID} characters)")
    others = sorted(set(body) - {"attach"})
    if others:
        raise validation(f"'attach' goes alone: the interpreter runs already, so "
                         f"{', '.join(repr(k) for k in others)} cannot apply")
    return source


def parse_message(body: dict[str, Any]) -> dict[str, Any]:
    """The ``send`` request to the agent of a ``POST …/messages`` body."""
    channel, msg_type = body.get("channel"), body.get("msg_type")
    if channel not in CHANNELS:
        raise validation(f"'channel' must be one of {', '.join(CHANNELS)}")
    if not isinstance(msg_type, str) or not msg_type:
        raise validation("'msg_type' must be a non-empty string")
    for key in ("content", "metadata"):
        if not isinstance(body.get(key) or {}, dict):
            raise validation(f"'{key}' must be an object")
    msg_id = body.get("msg_id")
    if msg_id is not None and (not isinstance(msg_id, str) or not msg_id):
        raise validation("'msg_id' must be a non-empty string")
    buffers = body.get("buffers") or []
    try:
        for buf in buffers:
            b64decode(buf, validate=True)
    except (TypeError, Base64Error):
        raise validation("'buffers' must be a list of base64 strings") from None
    return {"op": "send", "channel": channel, "msg_type": msg_type,
            "content": body.get("content") or {}, "metadata": body.get("metadata") or {},
            "msg_id": msg_id, "buffers": buffers}
