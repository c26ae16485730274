"""Box and exec records, request validation, ids and timestamps."""

from __future__ import annotations

import json
import re
import secrets
import string
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..backends.base import Volume
from .errors import validation

_ID_ALPHABET = string.ascii_letters + string.digits + "-_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")

BOX_STATUSES = ("creating", "running", "stopped")
EXEC_STATUSES = ("running", "succeeded", "failed", "canceled")
#: What happens to an exec whose output passes the server's limit (the first is the default).
OUTPUT_LIMIT_ACTIONS = ("truncate", "stop")


def new_id(prefix: str) -> str:
    """``prefix_`` followed by 12 URL-safe random characters."""
    return prefix + "_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))


def now() -> str:
    """The current time, RFC 3339 in UTC."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str) -> datetime:
    """The inverse of :func:`now`."""
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


@dataclass
class Box:
    """A box as stored and as the API shows it."""

    id: str
    name: str | None
    status: str
    image: str
    cpu: int
    memory_mb: int
    disk_size_gb: int
    network: bool
    workdir: str
    env: dict[str, str] | None
    volumes: list[dict[str, Any]] | None
    boxlite_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    created_at: str = field(default_factory=now)
    started_at: str | None = None
    stopped_at: str | None = None
    #: The snapshot (id) the box is a fork of, if it is one.
    snapshot: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The API's box object."""
        return asdict(self)

    def volume_specs(self) -> list[Volume]:
        """The volumes as backend values."""
        return [Volume(**v) for v in self.volumes or []]


@dataclass
class Exec:
    """An exec as stored and as the API shows it."""

    id: str
    box_id: str
    status: str
    cmd: list[str]
    env: dict[str, str] | None
    workdir: str | None
    timeout_ms: int | None
    exit_code: int | None = None
    error_message: str | None = None
    created_at: str = field(default_factory=now)
    finished_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The API's exec object."""
        return asdict(self)


@dataclass(frozen=True)
class Event:
    """One SSE event of an exec: a chunk of output, or the final ``exit``."""

    seq: int
    event: str
    stream: str | None
    data: str

    def to_json(self) -> dict[str, Any]:
        """The SSE ``data`` payload."""
        return {"stream": self.stream, "data": self.data, "seq": self.seq}

    def json_text(self) -> str:
        """The SSE ``data`` payload as JSON text."""
        return json.dumps(self.to_json())


# --- request validation -------------------------------------------------------------


def _typed(body: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any) -> Any:
    value = body.get(key, default)
    if value is None:
        return default
    # bool is an int subclass; a JSON true is never a valid count.
    if isinstance(value, bool) and kind is int:
        raise validation(f"'{key}' must be an integer")
    if not isinstance(value, kind):
        name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise validation(f"'{key}' must be of type {name}")
    return value


def positive_int(body: dict[str, Any], key: str, default: int | None) -> int | None:
    """``body[key]`` as an integer > 0, or ``default`` when absent."""
    value = _typed(body, key, int, default)
    if value is not None and value <= 0:
        raise validation(f"'{key}' must be greater than 0")
    return value


def seconds(body: dict[str, Any], key: str, default: float) -> float:
    """``body[key]`` as a number of seconds ≥ 0, or ``default`` when absent."""
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise validation(f"'{key}' must be a number of seconds, 0 or more")
    return value


def choice(body: dict[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    """``body[key]``, one of ``allowed``; the first of them when absent."""
    value = _typed(body, key, str, allowed[0])
    if value not in allowed:
        raise validation(f"'{key}' must be one of {', '.join(allowed)}")
    return value


def absolute_path(body: dict[str, Any], key: str, default: str | None) -> str | None:
    """``body[key]`` as an absolute path, or ``default`` when absent."""
    value = _typed(body, key, str, default)
    if value is not None and not value.startswith("/"):
        raise validation(f"'{key}' must be an absolute path")
    return value


def string_map(body: dict[str, Any], key: str) -> dict[str, str] | None:
    """``body[key]`` as an object of strings, or ``None``."""
    value = _typed(body, key, dict, None)
    if value is not None and not all(isinstance(v, str) for v in value.values()):
        raise validation(f"'{key}' values must be strings")
    return value


def volumes(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    """``body["volumes"]`` checked as ``{"host_path", "guest_path", "readonly"}`` items."""
    items = _typed(body, "volumes", list, None)
    if items is None:
        return None
    result = []
    for item in items:
        if not isinstance(item, dict):
            raise validation("each volume must be an object")
        host = absolute_path(item, "host_path", None)
        guest = absolute_path(item, "guest_path", None)
        if host is None or guest is None:
            raise validation("each volume needs 'host_path' and 'guest_path'")
        readonly = _typed(item, "readonly", bool, False)
        result.append({"host_path": host, "guest_path": guest, "readonly": readonly})
    return result


@dataclass(frozen=True)
class BoxRequest:
    """A validated ``POST /v1/boxes`` (and the box part of ``POST /v1/run``)."""

    image: str
    name: str | None
    cpu: int
    memory_mb: int
    #: ``None``: the server's default (:meth:`.resources.Ledger.disk_for`).
    disk_size_gb: int | None
    network: bool
    workdir: str
    env: dict[str, str] | None
    volumes: list[dict[str, Any]] | None
    #: The snapshot (id) the box is a fork of.
    snapshot: str | None = None

    @classmethod
    def parse(cls, body: dict[str, Any]) -> BoxRequest:
        """Validate a request body; VALIDATION_ERROR names the first bad field."""
        image = _typed(body, "image", str, None)
        if not image:
            raise validation("'image' is required")
        name = _typed(body, "name", str, None)
        if name is not None and not _NAME.fullmatch(name):
            raise validation("'name' must be 1-63 letters, digits, '.', '_' or '-', "
                             "starting with a letter or digit (it is the box's hostname)")
        return cls(
            image=image,
            name=name,
            cpu=positive_int(body, "cpu", 2),  # type: ignore[arg-type]
            memory_mb=positive_int(body, "memory_mb", 1024),  # type: ignore[arg-type]
            disk_size_gb=positive_int(body, "disk_size_gb", None),
            network=_typed(body, "network", bool, False),
            workdir=absolute_path(body, "workdir", "/root"),  # type: ignore[arg-type]
            env=string_map(body, "env"),
            volumes=volumes(body),
            snapshot=_typed(body, "snapshot", str, None),
        )


@dataclass(frozen=True)
class ExecRequest:
    """A validated ``POST /v1/boxes/{id}/exec``."""

    cmd: list[str]
    env: dict[str, str] | None
    workdir: str | None
    timeout_ms: int | None
    #: ``stop``: kill the command once its output passes the server's limit.
    on_output_limit: str = "truncate"

    @classmethod
    def parse(cls, body: dict[str, Any]) -> ExecRequest:
        """Validate a request body; VALIDATION_ERROR names the first bad field."""
        cmd = _typed(body, "cmd", list, None)
        if not cmd or not all(isinstance(c, str) for c in cmd):
            raise validation("'cmd' must be a non-empty list of strings")
        return cls(
            cmd=cmd,
            env=string_map(body, "env"),
            workdir=absolute_path(body, "workdir", None),
            timeout_ms=positive_int(body, "timeout_ms", None),
            on_output_limit=choice(body, "on_output_limit", OUTPUT_LIMIT_ACTIONS),
        )


@dataclass
class Snapshot:
    """A saved state of a box, as stored; ``source`` is the box as it was (what a fork
    gets unless its request says otherwise). Kept without its box when asked to."""

    id: str
    name: str
    box_id: str
    memory: bool
    size_bytes: int
    created_at: str
    source: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The API's snapshot object."""
        return {"id": self.id, "name": self.name, "box_id": self.box_id,
                "memory": self.memory, "size_bytes": self.size_bytes,
                "created_at": self.created_at}
