"""Terminal verbs: ``attach`` (a raw-mode terminal over the attach WebSocket) and
``shell`` (create, attach, remove)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import termios
import threading
import tty
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection, connect, unix_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI

from ...core.errors import BoxRunError
from . import output
from .api import Api
from .boxes import box_flags, create_box
from .connection import Endpoint

#: What a terminal reads as the end of input (Ctrl-D).
END_OF_INPUT = b"\x04"
#: Seconds between Ctrl-Ds once our input has ended, until the shell exits.
END_REPEAT = 0.5
#: Largest frame taken from the server (terminal output comes in much smaller chunks).
MAX_FRAME = 4 << 20


def terminal_size() -> tuple[int, int]:
    """Columns and rows of our terminal (80×24 when there is none)."""
    for fd in (sys.stdout.fileno(), sys.stdin.fileno()):
        with contextlib.suppress(OSError):
            size = os.get_terminal_size(fd)
            if size.columns > 0 and size.lines > 0:
                return size.columns, size.lines
    return 80, 24


@contextlib.contextmanager
def raw_mode(fd: int) -> Iterator[None]:
    """``fd``'s terminal in raw mode (keys go to the box as typed), restored after."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


async def _open(target: Endpoint, box: str, shell: str) -> ClientConnection:
    cols, rows = terminal_size()
    query = urlencode({"shell": shell, "cols": cols, "rows": rows,
                       "term": os.environ.get("TERM") or "xterm-256color"})
    uri = target.ws_url(f"/v1/boxes/{box}/attach?{query}")
    headers = {"Authorization": f"token {target.token}"} if target.token else None
    kw: dict[str, Any] = {"additional_headers": headers, "max_size": MAX_FRAME,
                          "open_timeout": 30}
    try:
        if target.socket:
            return await unix_connect(target.socket, uri, **kw)
        return await connect(uri, **kw)
    except InvalidStatus as exc:  # refused before the upgrade: the API's JSON error
        try:
            body = json.loads(exc.response.body or b"")
            raise BoxRunError(str(body["code"]), str(body["message"])) from None
        except (ValueError, KeyError, TypeError):
            raise BoxRunError("UNREACHABLE", f"attach refused: {exc}") from None
    except (OSError, InvalidURI, TimeoutError) as exc:
        raise BoxRunError("UNREACHABLE", f"{target.describe()}: {exc}") from None


async def _session(ws: ClientConnection) -> int:
    """Relay keys and resizes to the box and its output to us; the shell's exit code."""
    loop = asyncio.get_running_loop()
    keys: asyncio.Queue[bytes | str] = asyncio.Queue()
    stdin = sys.stdin.fileno()
    ended = asyncio.Event()

    def end_input() -> None:
        keys.put_nowait(END_OF_INPUT)
        ended.set()

    def read_keys() -> None:
        data = os.read(stdin, 65536)
        if data:
            keys.put_nowait(data)
        else:  # end of our input: end the box terminal's too, as ssh does
            loop.remove_reader(stdin)
            end_input()

    def read_file() -> None:  # stdin that cannot be polled: a file, /dev/null
        while data := os.read(stdin, 65536):
            loop.call_soon_threadsafe(keys.put_nowait, data)
        loop.call_soon_threadsafe(end_input)

    def resized() -> None:
        cols, rows = terminal_size()
        keys.put_nowait(json.dumps({"type": "resize", "cols": cols, "rows": rows}))

    async def send() -> None:
        while True:
            if not ended.is_set():
                await ws.send(await keys.get())
                continue
            try:
                await ws.send(await asyncio.wait_for(keys.get(), END_REPEAT))
            except TimeoutError:  # again: a Ctrl-D that comes while a command runs is lost
                await ws.send(END_OF_INPUT)

    try:
        loop.add_reader(stdin, read_keys)
    except PermissionError:
        threading.Thread(target=read_file, daemon=True).start()
    loop.add_signal_handler(signal.SIGWINCH, resized)
    sender = asyncio.ensure_future(send())
    try:
        async for message in ws:
            if isinstance(message, bytes):
                os.write(sys.stdout.fileno(), message)
                continue
            control = json.loads(message)
            if control.get("type") == "exit":
                code = control.get("code")
                return code & 0xFF if isinstance(code, int) else 1
            if control.get("type") == "error":
                raise BoxRunError(str(control.get("code")), str(control.get("message")))
    except ConnectionClosed:
        pass
    finally:
        sender.cancel()
        loop.remove_reader(stdin)
        loop.remove_signal_handler(signal.SIGWINCH)
        await ws.close()
    raise BoxRunError("UNREACHABLE", "the terminal's connection closed before the shell ended")


async def _attach(target: Endpoint, box: str, shell: str) -> int:
    ws = await _open(target, box, shell)
    with raw_mode(sys.stdin.fileno()):
        return await _session(ws)


def attach_box(api: Api, box: str, shell: str) -> int:
    """A terminal on ``box`` until its shell ends; the shell's exit code."""
    return asyncio.run(_attach(api.target, box, shell))


def attach(api: Api, args: argparse.Namespace) -> int:
    return attach_box(api, args.box, args.shell)


def shell(api: Api, args: argparse.Namespace) -> int:
    box = create_box(api, args)
    try:
        return attach_box(api, box["id"], args.shell)
    finally:
        if args.keep:
            output.note(f"kept {box.get('name') or box['id']}")
        else:
            api.call("DELETE", f"/v1/boxes/{box['id']}", params={"force": "true"})


def add_parsers(sub: Any, client: Any) -> None:
    """The terminal verbs, each run by ``client``."""
    p = sub.add_parser("attach", help="an interactive terminal in a running box")
    p.add_argument("box", metavar="BOX", help="box id or name")
    p.add_argument("--shell", default="/bin/bash", help="shell to run (default /bin/bash)")
    p.set_defaults(run=client(attach))
    p = sub.add_parser("shell", parents=[box_flags()],
                       help="create a box, attach a terminal, remove it on exit")
    p.add_argument("--shell", default="/bin/bash", help="shell to run (default /bin/bash)")
    p.add_argument("--keep", action="store_true", help="keep the box after the shell ends")
    p.set_defaults(run=client(shell))
