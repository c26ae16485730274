"""A minimal tornado app mimicking BoxRun's routes: the HTTP-stack baseline of the benchmark."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from pathlib import Path

from tornado import httpserver, netutil, web

EXEC = {"id": "exec_000000000000", "box_id": "box_000000000000", "status": "running",
        "cmd": ["true"], "env": None, "workdir": None, "timeout_ms": None, "exit_code": None,
        "error_message": None, "created_at": "2024-01-01T00:00:00Z", "finished_at": None}
EXIT = {"stream": None, "data": json.dumps({"exit_code": 0}), "seq": 0}


class Base(web.RequestHandler):
    """Checks the token header when one is sent, as the real server does on TCP."""

    def prepare(self) -> None:
        header = self.request.headers.get("Authorization")
        if header is not None and header != f"token {self.settings['token']}":
            raise web.HTTPError(403)


class ListHandler(Base):
    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(self.settings["list_body"])


class ExecHandler(Base):
    def post(self, box_id: str) -> None:
        json.loads(self.request.body or b"{}")
        self.set_status(201)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(EXEC))


class EventsHandler(Base):
    async def get(self, box_id: str, exec_id: str) -> None:
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.write(f"id: 0\nevent: exit\ndata: {json.dumps(EXIT)}\n\n")
        await self.flush()
        self.finish()


class InfoHandler(Base):
    def get(self) -> None:
        self.finish({"max_cpu": 1})


async def serve(args: argparse.Namespace) -> None:
    app = web.Application([
        (r"/v1/info", InfoHandler),
        (r"/v1/boxes", ListHandler),
        (r"/v1/boxes/([^/]+)/exec", ExecHandler),
        (r"/v1/boxes/([^/]+)/exec/([^/]+)/events", EventsHandler),
    ], list_body=Path(args.list_body).read_bytes(), token=args.token)
    server = httpserver.HTTPServer(app)
    server.add_socket(netutil.bind_unix_socket(args.sock))
    server.listen(args.port, "127.0.0.1")
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    await done.wait()
    server.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sock", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--list-body", required=True, help="file holding the GET /v1/boxes body")
    p.add_argument("--token", required=True)
    asyncio.run(serve(p.parse_args()))


if __name__ == "__main__":
    main()
