"""The API's routes, and their binding to a hosting app's handler base classes."""

from __future__ import annotations

from collections.abc import Callable

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..core.errors import BoxRunError
from .attach import AttachHandler
from .base import BoxRunHandler
from .boxes import BoxActionHandler, BoxesHandler, BoxHandler
from .channel import SessionChannelHandler
from .execs import (
    ExecActionHandler,
    ExecEventsHandler,
    ExecHandler,
    ExecListHandler,
    ExecStartHandler,
)
from .files import DownloadHandler, UploadHandler
from .metrics import (
    BoxMetricsEventsHandler,
    BoxMetricsHandler,
    LifecycleEventsHandler,
    MetricsEventsHandler,
)
from .misc import (
    DashboardHandler,
    GcHandler,
    ImagesHandler,
    InfoHandler,
    OpenAPIHandler,
    RunHandler,
)
from .sessions import (
    SessionActionHandler,
    SessionEventsHandler,
    SessionHandler,
    SessionMessagesHandler,
    SessionsHandler,
)
from .snapshots import SnapshotActionHandler, SnapshotHandler, SnapshotsHandler

_ID = r"([^/:]+)"
_ACTION = r":([A-Za-z_]+)"


class NotFoundHandler(BoxRunHandler):
    """Any other path under ``/v1``: a NOT_FOUND error in the API's format."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        raise BoxRunError("NOT_FOUND", f"no such endpoint: {self.request.method} {self.request.path}")

    post = put = patch = delete = get


ROUTES: list[tuple[str, type[BoxRunHandler]]] = [
    (r"/v1/info", InfoHandler),
    (r"/v1/openapi\.json", OpenAPIHandler),
    (r"/v1/boxes", BoxesHandler),
    (rf"/v1/boxes/{_ID}{_ACTION}", BoxActionHandler),
    (rf"/v1/boxes/{_ID}", BoxHandler),
    (rf"/v1/boxes/{_ID}/exec", ExecStartHandler),
    (rf"/v1/boxes/{_ID}/execs", ExecListHandler),
    (rf"/v1/boxes/{_ID}/exec/{_ID}{_ACTION}", ExecActionHandler),
    (rf"/v1/boxes/{_ID}/exec/{_ID}", ExecHandler),
    (rf"/v1/boxes/{_ID}/exec/{_ID}/events", ExecEventsHandler),
    (rf"/v1/boxes/{_ID}/files/upload", UploadHandler),
    (rf"/v1/boxes/{_ID}/files/download", DownloadHandler),
    (r"/v1/run", RunHandler),
    (r"/v1/gc", GcHandler),
    (r"/v1/images", ImagesHandler),
    (rf"/v1/boxes/{_ID}/metrics", BoxMetricsHandler),
    (rf"/v1/boxes/{_ID}/metrics/events", BoxMetricsEventsHandler),
    (r"/v1/metrics/events", MetricsEventsHandler),
    (r"/v1/events", LifecycleEventsHandler),
    (rf"/v1/boxes/{_ID}/attach", AttachHandler),
    (rf"/v1/boxes/{_ID}/sessions", SessionsHandler),
    (rf"/v1/boxes/{_ID}/sessions/{_ID}{_ACTION}", SessionActionHandler),
    (rf"/v1/boxes/{_ID}/sessions/{_ID}", SessionHandler),
    (rf"/v1/boxes/{_ID}/sessions/{_ID}/messages", SessionMessagesHandler),
    (rf"/v1/boxes/{_ID}/sessions/{_ID}/events", SessionEventsHandler),
    (rf"/v1/boxes/{_ID}/sessions/{_ID}/channel", SessionChannelHandler),
    (rf"/v1/boxes/{_ID}/snapshots", SnapshotsHandler),
    (rf"/v1/boxes/{_ID}/snapshots/{_ID}{_ACTION}", SnapshotActionHandler),
    (rf"/v1/boxes/{_ID}/snapshots/{_ID}", SnapshotHandler),
    (r"/v1/.*", NotFoundHandler),
    (r"/ui", DashboardHandler),
]


def bind(prefix: str, bases: Callable[[type[BoxRunHandler]], tuple[type, ...]]) -> list[tuple[str, type]]:
    """The routes under ``prefix``, each handler combined with ``bases(handler)``."""
    return [
        (prefix + pattern, type(handler.__name__, (handler, *bases(handler)), {}))
        for pattern, handler in ROUTES
    ]
