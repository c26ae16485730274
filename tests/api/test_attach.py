"""``WS /v1/boxes/{id}/attach`` against a real server and real boxes."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from boxrun_sdk import BoxHandle, BoxRunClient
from websockets.asyncio.client import ClientConnection, connect, unix_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ..servers import ServerProcess

#: Prints the running shell's binary. gVisor (2022) lets no process without
#: CAP_SYS_PTRACE read another's /proc/PID/exe: there, the binary $0 names.
SHELL_EXE = "readlink /proc/$$/exe || readlink -f $0"


class Tty:
    """A terminal client: what the server shows, and its control messages."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.shown = b""
        self.controls: list[dict[str, Any]] = []

    async def type(self, text: str) -> None:
        await self.ws.send(text.encode())

    async def expect(self, pattern: bytes, timeout: float = 20) -> re.Match[bytes]:
        """Wait until the output since the last match matches ``pattern``."""
        deadline = time.monotonic() + timeout
        while not (match := re.search(pattern, self.shown)):
            assert time.monotonic() < deadline, f"no {pattern!r} in {self.shown!r}"
            try:
                message = await asyncio.wait_for(self.ws.recv(), 0.5)
            except TimeoutError:
                continue
            if isinstance(message, bytes):
                self.shown += message
            else:
                self.controls.append(json.loads(message))
        self.shown = self.shown[match.end():]
        return match

    async def control(self, timeout: float = 20) -> dict[str, Any]:
        """The next control message, skipping output."""
        while not self.controls:
            message = await asyncio.wait_for(self.ws.recv(), timeout)
            if isinstance(message, bytes):
                self.shown += message
            else:
                self.controls.append(json.loads(message))
        return self.controls.pop(0)


def attach(server: ServerProcess, box_id: str, query: str = "") -> Any:
    """A WebSocket to the box's terminal over the server's Unix socket."""
    return unix_connect(server.socket, f"ws://localhost/v1/boxes/{box_id}/attach{query}")


@pytest.fixture
async def sdk(server: ServerProcess) -> AsyncIterator[BoxRunClient]:
    async with BoxRunClient(server.socket_url) as client:
        yield client


@pytest.fixture
async def box(sdk: BoxRunClient) -> AsyncIterator[BoxHandle]:
    box = await sdk.create("debian", cpu=1, memory_mb=128)
    yield box
    await box.remove(force=True)


async def test_typing_echoes_and_exit_reports_the_code(server: ServerProcess, box: BoxHandle) -> None:
    async with attach(server, box.id) as ws:
        tty = Tty(ws)
        await tty.type("echo hi\r")
        await tty.expect(rb"(?<!echo )hi\r\n")
        await tty.type("sleep 100\r")
        await asyncio.sleep(0.5)
        await tty.type("\x03echo status $?\r")  # Ctrl-C reaches the foreground job
        await tty.expect(rb"status 130\r\n")
        await tty.type("exit\r")
        assert await tty.control() == {"type": "exit", "code": 0}
        with pytest.raises(ConnectionClosed):
            await ws.recv()


async def test_terminal_size_term_and_resize(server: ServerProcess, box: BoxHandle) -> None:
    async with attach(server, box.id, "?cols=100&rows=30&term=vt100&shell=/bin/sh") as ws:
        tty = Tty(ws)
        await tty.type(f"stty size; tty; echo $TERM $0; {SHELL_EXE}\r")
        await tty.expect(rb"30 100\r\n/dev/pts/\d+\r\nvt100 /bin/sh\r\n\S*dash\r\n")
        await ws.send(json.dumps({"type": "resize", "cols": 120, "rows": 40}))
        await ws.send("not json")  # ignored
        await tty.type("stty size\r")
        await tty.expect(rb"40 120\r\n")
        await tty.type("exit 3\r")
        control = await tty.control()
        assert control == {"type": "exit", "code": 3}, tty.shown


async def test_a_missing_shell_falls_back_to_sh(server: ServerProcess, box: BoxHandle) -> None:
    async with attach(server, box.id, "?shell=/bin/zsh") as ws:
        tty = Tty(ws)
        await tty.expect(rb"/bin/zsh is not in this box; starting /bin/sh")
        await tty.type(f"{SHELL_EXE}\r")
        await tty.expect(rb"/\S*dash\r\n")


async def test_stopped_or_missing_box_gets_an_error_then_close(server: ServerProcess, box: BoxHandle) -> None:
    await box.stop()
    for box_id, code in ((box.id, "BOX_NOT_RUNNING"), ("box_missing", "BOX_NOT_FOUND")):
        async with attach(server, box_id) as ws:
            error = json.loads(await ws.recv())
            assert error["type"] == "error" and error["code"] == code and error["message"]
            with pytest.raises(ConnectionClosed):
                await ws.recv()


async def test_bad_size_is_refused_before_the_upgrade(server: ServerProcess, box: BoxHandle) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with attach(server, box.id, "?cols=0"):
            pass
    assert refused.value.response.status_code == 422
    assert json.loads(refused.value.response.body)["code"] == "VALIDATION_ERROR"


async def test_tcp_needs_the_token(server: ServerProcess, box: BoxHandle) -> None:
    url = f"ws://127.0.0.1:{server.port}/v1/boxes/{box.id}/attach"
    for bad in ({}, {"additional_headers": {"Authorization": "token wrong"}}):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, **bad):
                pass
        assert refused.value.response.status_code == 401
    for good in (connect(url, additional_headers={"Authorization": f"token {server.token}"}),
                 connect(f"{url}?token={server.token}")):
        async with good as ws:
            tty = Tty(ws)
            await tty.type("echo $((6 * 7))\r")
            await tty.expect(rb"42\r\n")


async def box_processes(box: BoxHandle) -> str:
    script = "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done"
    events = [e async for e in box.exec_stream(["sh", "-c", script])]
    return "".join(e.data for e in events if e.stream == "stdout")


async def test_closing_the_socket_kills_the_whole_session(server: ServerProcess, box: BoxHandle) -> None:
    async with attach(server, box.id) as ws:
        tty = Tty(ws)
        await tty.type("sleep 1001 & sleep 1002\r")
        deadline = time.monotonic() + 20
        while "sleep 1002" not in await box_processes(box):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        assert "/bin/bash" in await box_processes(box)
    deadline = time.monotonic() + 20
    while re.search(r"sleep 100[12]|bash", left := await box_processes(box)):
        assert time.monotonic() < deadline, left
        await asyncio.sleep(0.1)
