"""One interpreter session in a box: requests out, the session's event stream back in."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from websockets.exceptions import ConnectionClosed

from .client import ApiError, BoxRunClient, BoxUnavailable

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

#: Seconds the channel is tried again after it broke (the server restarting) before the
#: session counts as lost; the pause between tries grows to :data:`RETRY_PAUSE`.
RECONNECT_FOR = 60.0
RETRY_PAUSE = 2.0
#: After the channel came back, how long a request sent before waits for a first sign that
#: the box got it; then it fails (lost with the server that went away).
UNHEARD = 10.0
#: How many request parents to remember for late output (threads, widgets).
PARENTS = 512
#: After a reply, how long to wait for the interpreter's ``idle`` (its last output).
IDLE_AFTER_REPLY = 5.0
#: Error codes meaning the session cannot take messages any more.
LOST = {"SESSION_DEAD", "SESSION_NOT_FOUND", "BOX_NOT_RUNNING", "BOX_NOT_FOUND"}
#: The session events that carry the interpreter's ``kernel_info_reply`` content.
GREETINGS = {"ready", "restarted", "reattached"}

Relay = Callable[[str, dict[str, Any], dict[str, Any], list[bytes], dict[str, Any]], None]
AskInput = Callable[[dict[str, Any], "Request"], Awaitable[str]]


@dataclass
class Request:
    """A frontend request forwarded to the box, and the futures its answers resolve."""

    parent: dict[str, Any]
    ident: list[bytes]
    reply: asyncio.Future[dict[str, Any]] = field(default_factory=asyncio.Future)
    metadata: dict[str, Any] = field(default_factory=dict)  # of the reply
    idle: asyncio.Future[None] = field(default_factory=asyncio.Future)
    heard: bool = False  # whether any message of the box answered it


class BoxSession:
    """Talks to session ``sid`` of ``box`` over its WebSocket channel; ``relay`` re-sends
    iopub messages to the frontend. A broken channel is opened again for ``reconnect_for``
    seconds (the server restarting: the session's interpreter runs on in the box), resuming
    after the last event seen."""

    def __init__(self, client: BoxRunClient, box: dict[str, Any], sid: str, relay: Relay,
                 ask_input: AskInput, log: logging.Logger,
                 reconnect_for: float = RECONNECT_FOR) -> None:
        self.client, self.box, self.sid = client, box, sid
        self.relay, self.ask_input, self.log = relay, ask_input, log
        self.reconnect_for = reconnect_for
        self.dead: str | None = None
        self.sends_status = False
        self.pending: dict[str, Request] = {}
        self.parents: OrderedDict[str, Request] = OrderedDict()
        self.last: Request | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._send_lock = asyncio.Lock()
        self._channel: ClientConnection | None = None
        self._connected = asyncio.Event()
        #: The interpreter's kernel_info (``{}`` if the session died first), from the first
        #: greeting the channel brings: stored, so it comes however late the channel opens.
        self.info: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pump = asyncio.create_task(self._read_events())

    async def request(self, channel: str, msg_type: str, content: dict[str, Any],
                      parent: dict[str, Any] | None = None, ident: list[bytes] | None = None,
                      reply: bool = True, reply_metadata: dict[str, Any] | None = None
                      ) -> dict[str, Any] | None:
        """Send a message for ``parent`` (the frontend's, or a new one); its reply content
        (and its metadata into ``reply_metadata``)."""
        msg_id = parent["header"]["msg_id"] if parent else uuid.uuid4().hex
        req = Request(parent or {"header": {"msg_id": msg_id}}, ident or [])
        if self.dead:
            raise BoxUnavailable(self.dead)
        self.pending[msg_id] = self.parents[msg_id] = self.last = req
        while len(self.parents) > PARENTS:
            self.parents.popitem(last=False)
        buffers = [base64.b64encode(b).decode() for b in req.parent.get("buffers") or []]
        message = {"channel": channel, "msg_type": msg_type, "content": content,
                   "metadata": req.parent.get("metadata", {}), "msg_id": msg_id,
                   "buffers": buffers}
        try:
            await self._send(message)
            answer = await req.reply if reply else None
            if reply_metadata is not None:
                reply_metadata.update(req.metadata)
            if self.sends_status:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(req.idle), IDLE_AFTER_REPLY)
            return answer
        except ApiError as exc:
            if exc.code not in LOST:
                raise BoxUnavailable(f"the server refused {msg_type}: {exc}") from exc
            raise BoxUnavailable(await self._lost(str(exc))) from exc
        finally:
            self.pending.pop(msg_id, None)

    async def _read_events(self) -> None:
        """Dispatch events until the session dies, reconnecting a broken channel."""
        last = -1
        broken: float | None = None  # since when the channel is down
        tries = 0
        try:
            while not self.dead:
                try:
                    self._channel = await self.client.channel(self.box["id"], self.sid, last)
                    if broken is not None:
                        self.log.info("the BoxRun server's channel is back after %.1f s",
                                      time.monotonic() - broken)
                        self._spawn(self._fail_unheard())
                    broken, tries = None, 0
                    self._connected.set()
                    async for frame in self._channel:
                        data = json.loads(frame)
                        if data.get("type") == "error":
                            self._refused(data)
                            continue
                        last = data.get("seq", last)
                        self._dispatch(data.get("channel", ""), data)
                    problem = "the session's channel closed"
                except ApiError as exc:
                    await self._lost(str(exc))
                    return
                except (BoxUnavailable, ConnectionClosed) as exc:
                    problem = str(exc)
                finally:
                    self._connected.clear()
                    self._channel = None
                broken = broken or time.monotonic()
                if time.monotonic() - broken > self.reconnect_for:
                    await self._lost(f"the BoxRun server at {self.client.where} did not come "
                                     f"back within {self.reconnect_for:.0f} s ({problem})")
                    return
                tries += 1
                await asyncio.sleep(min(RETRY_PAUSE, 0.1 * tries))
        except Exception as exc:  # a bug here must not leave cells waiting forever
            self.log.exception("reading the session's events failed")
            self._die(f"reading the box's events failed: {exc!r}")

    async def _fail_unheard(self) -> None:
        """Requests sent before the channel broke that the box never answered were lost
        with the server that went away: they fail after :data:`UNHEARD` s without a word."""
        waiting = [req for req in self.pending.values() if not req.heard]
        await asyncio.sleep(UNHEARD)
        for req in waiting:
            if not req.heard and not req.reply.done():
                req.reply.set_exception(BoxUnavailable(
                    "the request was lost while the BoxRun server restarted; send it again"))
                _resolve(req.idle, None)

    def _refused(self, error: dict[str, Any]) -> None:
        """The server refused a message: its request fails with the server's words."""
        req = self.pending.get(error.get("msg_id") or "")
        failure = ApiError(error.get("code", "RUNTIME_ERROR"), error.get("message", ""), 0)
        if req is not None and not req.reply.done():
            req.reply.set_exception(failure)
        else:
            self.log.warning("the server refused a message: %s", failure)

    def _dispatch(self, event: str, data: dict[str, Any]) -> None:
        msg_type, content = data.get("msg_type", ""), data.get("content") or {}
        if event == "session":
            if msg_type == "dead":
                self._die(describe_death(self.box, content))
            elif msg_type in GREETINGS:
                # every kind of session says busy and idle around each request (the
                # kernel's first request no longer follows a kernel_info that showed it)
                self.sends_status = True
                info = (data.get("metadata") or {}).get("kernel_info")
                _resolve(self.info, info if isinstance(info, dict) else {})
            return
        req = self.parents.get(data.get("parent_msg_id") or "")
        if req is not None:
            req.heard = True
        channel = data.get("channel", event)
        if channel == "iopub" and msg_type == "status":
            self.sends_status = True
            if req is not None and content.get("execution_state") == "idle":
                _resolve(req.idle, None)
        elif channel == "iopub":
            buffers = [base64.b64decode(b) for b in data.get("buffers") or []]
            parent = req or self.last
            self.relay(msg_type, content, data.get("metadata") or {}, buffers,
                       parent.parent if parent else {})
        elif channel == "stdin" and msg_type == "input_request" and req is not None:
            self._spawn(self._answer_input(content, req))
        elif req is not None and msg_type.endswith("_reply"):
            req.metadata = data.get("metadata") or {}
            _resolve(req.reply, content)

    async def _answer_input(self, content: dict[str, Any], req: Request) -> None:
        answer = asyncio.ensure_future(self.ask_input(content, req))
        # A cell that ends (interrupted, failed) no longer waits for its input.
        await asyncio.wait([answer, req.idle, req.reply], return_when=asyncio.FIRST_COMPLETED)
        if not answer.done():
            answer.cancel()
            return
        message = {"channel": "stdin", "msg_type": "input_reply",
                   "content": {"status": "ok", "value": answer.result()}}
        with contextlib.suppress(BoxUnavailable):
            await self._send(message)

    async def _send(self, message: dict[str, Any]) -> None:
        """Send a message on the channel (once it is open); one at a time, so the box gets
        them in the frontend's order (comm messages are handled while a cell runs)."""
        async with self._send_lock:
            while self._channel is None:
                if self.dead or self._pump.done():
                    raise BoxUnavailable(self.dead or "the session's channel is closed")
                connected = asyncio.ensure_future(self._connected.wait())
                await asyncio.wait([connected, self._pump], return_when=asyncio.FIRST_COMPLETED)
                connected.cancel()
            try:
                await self._channel.send(json.dumps(message))
            except ConnectionClosed as exc:
                raise BoxUnavailable(f"lost the channel to the BoxRun server: {exc}") from exc

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _lost(self, fallback: str) -> str:
        """Find out (and remember) why the session no longer answers."""
        try:
            box = await self.client.find_box(self.box["id"])
            session = await self.client.session(self.box["id"], self.sid) if box else {}
        except BoxUnavailable as exc:
            box, session = self.box, {"error_message": str(exc)}
        if box is None:
            reason = f"box {self.box['name']} was removed"
        elif session.get("status") == "dead" or box.get("status") != "running":
            reason = describe_death({**self.box, **box}, session)
        else:
            reason = fallback
        self._die(reason)
        return self.dead or reason

    def _die(self, reason: str) -> None:
        if self.dead:
            return
        self.dead = reason
        _resolve(self.info, {})
        for req in self.pending.values():
            if not req.reply.done():
                req.reply.set_exception(BoxUnavailable(self.dead))
            _resolve(req.idle, None)

    async def close(self) -> None:
        """Stop reading events and end the session in the box."""
        await self.stop()
        await self.end()

    async def stop(self) -> None:
        """Stop reading events (the session goes on in the box)."""
        self._pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pump
        for task in self._tasks:
            task.cancel()

    async def end(self) -> None:
        """End the session in the box, unless it has died."""
        if not self.dead:
            self.dead = "the kernel is shutting down"
            with contextlib.suppress(BoxUnavailable):
                await self.client.close_session(self.box["id"], self.sid)


async def running_box(client: BoxRunClient, name: str) -> dict[str, Any]:
    """Box ``name``, which must be running (:class:`BoxUnavailable` says what to do if not)."""
    box = await client.call("GET", f"/v1/boxes/{name}")
    if box["status"] != "running":
        raise BoxUnavailable(f"box {name} is {box['status']}: start it with %boxrun start {name}")
    return box


async def open_session(client: BoxRunClient, box: dict[str, Any], cwd: str | None,
                       relay: Relay, ask_input: AskInput, log: logging.Logger,
                       reconnect_for: float = RECONNECT_FOR) -> BoxSession:
    """A new interpreter session in the running ``box``, started in ``cwd``."""
    record = await client.start_session(box["id"], cwd)
    return BoxSession(client, box, record["id"], relay, ask_input, log, reconnect_for)


def describe_death(box: dict[str, Any], session: dict[str, Any]) -> str:
    """Why the interpreter of ``session`` in ``box`` is gone, in words."""
    why = session.get("error_message") or "its process ended"
    if box.get("status") not in (None, "running"):
        return f"box {box['name']} is {box['status']}: the interpreter in it died ({why})"
    return f"the interpreter in box {box['name']} died ({why})"


def _resolve(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)
