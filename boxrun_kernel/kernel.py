"""The BoxRun kernel: a Jupyter kernel whose interpreter runs in a BoxRun box."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Coroutine
from typing import Any, TypeVar

from ipykernel._version import kernel_protocol_version
from ipykernel.kernelbase import Kernel
from traitlets import Bool, Enum, Float, Integer, Unicode, default

from . import __version__, boxspec, prestart
from .client import TIMEOUT, ApiError, BoxRunClient, BoxUnavailable
from .host import Host, MisplacedMagic, split_cell
from .magics.usage import usage_reply
from .outputs import WidgetGuard, confine_message, confine_reply
from .session import RECONNECT_FOR, BoxSession, Request, open_session, running_box

T = TypeVar("T")

#: How long ``kernel_info`` waits for the box before answering with what it knows.
INFO_WAIT = 30.0
#: What a lost interpreter's message suggests.
WAY_BACK = ("Restart the kernel to get a working box (`%boxrun start` starts a stopped box "
            "again, `%boxrun use NAME` moves to another)")


def error_content(ename: str, evalue: str, traceback: list[str] | None = None
                  ) -> dict[str, Any]:
    """An error reply's content; without a traceback, one line naming the error."""
    return {"status": "error", "ename": ename, "evalue": evalue,
            "traceback": traceback or [f"\x1b[0;31m{ename}\x1b[0m: {evalue}"]}


class BoxRunKernel(Kernel):
    """Relays the Jupyter protocol to an interpreter session in a box of a BoxRun server."""

    implementation = "boxrun"
    implementation_version = __version__
    banner = "Python in a BoxRun box"
    language_info = {"name": "python", "mimetype": "text/x-python", "file_extension": ".py"}
    #: ipykernel sleeps this long before each execute_reply, for output to reach clients
    #: first; a box's output has: the reply is sent after the box's ``idle``.
    _execute_sleep = Float(0.0).tag(config=True)

    server_url = Unicode(help="URL of a BoxRun server over TCP (http://:TOKEN@host:port); "
                              "empty: use socket_path ($BOXRUN_URL)").tag(config=True)
    socket_path = Unicode(help="Unix socket of the BoxRun server ($BOXRUN_SOCKET, else "
                               "$BOXRUN_STATE_DIR/boxrun.sock, else ~/.boxrun/boxrun.sock: "
                               "the Jupyter server's own)").tag(config=True)
    image = Unicode(boxspec.IMAGE, help="Image of the kernel's box").tag(config=True)
    cpu = Integer(boxspec.CPU, help="CPUs of the kernel's box").tag(config=True)
    memory_mb = Integer(boxspec.MEMORY_MB, help="Memory of the kernel's box, in MiB"
                        ).tag(config=True)
    network = Bool(False, help="Whether the box may reach the network").tag(config=True)
    box_name = Unicode(boxspec.BOX_NAME, help="Name of the kernel's box; {kernel_id} is the "
                       "kernel's id, so a restarted kernel finds its box").tag(config=True)
    mount = Enum(["ro", "rw", "off"], boxspec.MOUNT, help="How the notebook's folder (the "
                 "kernel's "
                 "working directory) is mounted in the box, at the same path; the interpreter "
                 "starts there").tag(config=True)
    keep_box = Bool(False, help="Keep the box (its files and installed packages) when the "
                    "kernel shuts down").tag(config=True)
    boot_wait = Float(INFO_WAIT, help="Seconds kernel_info waits for the box").tag(config=True)
    reconnect_seconds = Float(RECONNECT_FOR, help="Seconds the kernel tries to reach the BoxRun "
                              "server again after it went away (a restart: the interpreter "
                              "runs on in its box); cells sent meanwhile wait, then fail"
                              ).tag(config=True)
    cell_usage = Bool(True, help="Pass on each cell's wall time and the box's peak memory and "
                      "cpu time, from the server, in its execute_reply metadata (boxrun_usage), "
                      "which the lab extension saves in the cell's metadata").tag(config=True)
    trusted_output = Bool(False, help="Relay the box's HTML, Markdown and JavaScript output "
                          "as it is, for JupyterLab to run in its own origin (with the user's "
                          "access to the Jupyter server), instead of under the BoxRun MIME "
                          "type, which the lab extension renders sanitized or in a sandboxed "
                          "frame").tag(config=True)

    @default("server_url")
    def _server_url_default(self) -> str:
        return boxspec.server_address()[0]

    @default("socket_path")
    def _socket_path_default(self) -> str:
        return boxspec.server_address()[1]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for msg_type in ("comm_open", "comm_msg", "comm_close"):
            self.shell_handlers[msg_type] = self._forward_comm
        self._client: BoxRunClient | None = None
        self._boot: asyncio.Task[BoxSession] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._notice = ""
        self._cell_usage: tuple[str, dict[str, Any]] | None = None  # (msg_id, usage)
        self._id = ""
        self._target: str | None = None  # the box `%boxrun use` chose; None: the kernel's own
        # a box and the session `%boxrun use NAME --attach SID` attached there, for the next boot
        self._attached: tuple[dict[str, Any], dict[str, Any]] | None = None
        self._opened = False  # whether a box was opened: later, a missing box is not made
        self._cells: dict[str, BoxSession] = {}  # interpreters of `%%boxrun NAME` cells
        # Added to the box interpreter's execution counts, so that they go on across a
        # restore (whose interpreter counts from the snapshot, or from 1); the next
        # execute_input after a restore sets it.
        self._count_offset = 0
        self._renumber = False
        self._host = Host(self._show, self._current_box)
        self._deliveries: set[asyncio.Future[None]] = set()  # comm messages on their way
        self._last_delivery: asyncio.Future[None] | None = None  # they go in order
        self._widgets = WidgetGuard()

    @property
    def kernel_info(self) -> dict[str, Any]:
        # Neither the host's debugger nor subshells reach the box: none is claimed (and
        # ipykernel's own answer imports debugpy to ask, 80 ms of the kernel's start).
        return {"protocol_version": kernel_protocol_version,
                "implementation": self.implementation,
                "implementation_version": self.implementation_version,
                "language_info": self.language_info, "banner": self.banner,
                "help_links": self.help_links, "supported_features": []}

    def start(self) -> None:
        super().start()
        self.io_loop.add_callback(self._start_boot)

    # -- the box -------------------------------------------------------------------------

    def _start_boot(self) -> None:
        if self._boot is None:
            self._loop = asyncio.get_running_loop()
            self._client = self._client or BoxRunClient(self.server_url, self.socket_path)
            self._boot = asyncio.ensure_future(self._open_box(self._client))
            self._boot.add_done_callback(lambda task: task.cancelled() or task.exception())

    async def _session(self, box: str | None = None) -> BoxSession:
        """The live session (of box ``box`` for a ``%%boxrun NAME`` cell), opening the box
        first (again, if that failed or its interpreter was lost before)."""
        if box is not None and box != self._current_box():
            return await self._cell_session(box)
        self._start_boot()
        assert self._boot is not None
        boot = self._boot
        try:
            session = await asyncio.shield(boot)
        except Exception as exc:  # any failure to open the box becomes the cell's error
            if self._boot is boot:
                self._boot = None
            raise BoxUnavailable(f"could not open a box: {exc}") from exc
        if session.dead:
            raise BoxUnavailable(f"{session.dead}. {WAY_BACK}.")
        return session

    def _drop_dead_session(self) -> None:
        """After a cell was told its interpreter is gone: the next one opens the box again."""
        booted = self._booted()
        if booted is not None and booted.dead:
            self._boot = None

    def _booted(self) -> BoxSession | None:
        """The session the box was opened with, once it was (dead or alive)."""
        boot = self._boot
        if boot is None or not boot.done() or boot.cancelled() or boot.exception() is not None:
            return None
        return boot.result()

    async def _cell_session(self, name: str) -> BoxSession:
        """The interpreter of ``%%boxrun NAME`` cells in box ``name``."""
        session = self._cells.get(name)
        if session is None or session.dead:
            assert self._client is not None
            session = await open_session(self._client, await running_box(self._client, name),
                                         None, self._relay, self._ask_input, self.log,
                                         self.reconnect_seconds)
            self._cells[name] = session
        return session

    async def _open_box(self, client: BoxRunClient) -> BoxSession:
        started = time.monotonic()
        attached, self._attached = self._attached, None
        early = attached or await self._early_box(client)
        if early is not None:
            box, record = early
            session = BoxSession(client, box, record["id"], self._relay, self._ask_input,
                                 self.log, self.reconnect_seconds)
        else:
            box = await self._get_box(client)
            session = await open_session(client, box, boxspec.session_cwd(box, os.getcwd()),
                                         self._relay, self._ask_input, self.log,
                                         self.reconnect_seconds)
        self._opened = True
        # the session's greeting says it (no round trip to the box on the kernel's start)
        info = await session.info
        if session.dead:
            raise BoxUnavailable(session.dead)
        self.language_info = info.get("language_info") or self.language_info
        self.banner = (f"{info.get('banner', '')}\nRunning in BoxRun box {box['name']} "
                       f"({box['image']}).").strip()
        self.log.info("box %s and its session ready in %.1f s", box["name"],
                      time.monotonic() - started)
        return session

    async def _early_box(self, client: BoxRunClient
                         ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The box and session :mod:`.prestart` opened while the kernel started, if they
        are what these settings ask for; else None, and anything it made is undone."""
        started = prestart.claim()
        if started is None or self._opened:
            return None
        plan, future = started
        try:
            box, record, created = await asyncio.wrap_future(future)
        except Exception as exc:  # noqa: BLE001 - the kernel tries itself, and says why
            self.log.info("the early box did not open (%s); opening it now", exc)
            return None
        if plan == ((self.server_url, self.socket_path), self._spec()):
            return box, record
        with contextlib.suppress(BoxUnavailable):  # configured otherwise after all
            await client.close_session(box["id"], record["id"])
            if created:  # gone before the kernel makes its own box of the same name
                await client.remove_box(box["id"], timeout=TIMEOUT)
        return None

    def _own_box(self) -> str:
        """The name of the kernel's own box."""
        return boxspec.box_name(self.box_name, self._kernel_id)

    def _spec(self) -> dict[str, Any]:
        """The kernel's own box as its settings describe it."""
        return {"name": self._own_box(), "image": self.image, "cpu": self.cpu,
                "memory_mb": self.memory_mb, "network": self.network,
                "volumes": boxspec.notebook_volumes(os.getcwd(), self.mount)}

    def _current_box(self) -> str:
        """The name of the box cells run in."""
        return self._target or self._own_box()

    async def _get_box(self, client: BoxRunClient) -> dict[str, Any]:
        """The box cells run in, running. The kernel's own box is found by name (a restart)
        and started, else created, when the kernel starts; later, and for a box chosen with
        ``%boxrun use``, it must be there and running."""
        if self._target is not None or self._opened:
            return await running_box(client, self._current_box())
        box = await client.find_box(self._own_box())
        if box is not None:
            return box if box["status"] == "running" else await client.start_box(box["id"])
        spec = self._spec()
        try:
            return await client.create_box(spec)
        except ApiError as exc:
            # missing, out of box root's reach, or outside the server's volume_roots
            refused = exc.code in ("RUNTIME_ERROR", "VALIDATION_ERROR") and "volume" in str(exc)
            if not spec["volumes"] or not refused:
                raise
            self._notice = f"The notebook's folder is not mounted in the box: {exc}\n"
            return await client.create_box({**spec, "volumes": []})

    @property
    def _kernel_id(self) -> str:
        """The kernel's id (from its connection file), or a random one kept for the process."""
        if not self._id:
            connection = getattr(self.parent, "connection_file", "") or ""
            self._id = boxspec.kernel_id(connection) or uuid.uuid4().hex[:12]
        return self._id

    async def _on_main(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the main loop, which owns the HTTP client (control has its own)."""
        if self._loop is None or asyncio.get_running_loop() is self._loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    # -- relaying ------------------------------------------------------------------------

    def _relay(self, msg_type: str, content: dict[str, Any], metadata: dict[str, Any],
               buffers: list[bytes], parent: dict[str, Any]) -> None:
        """Re-send an iopub message of the box to the frontend, under its request (its
        active output confined and its widgets' HTML sanitized, unless ``trusted_output``;
        the host's widgets added to an answer on a control comm)."""
        assert self.session is not None
        if isinstance(count := content.get("execution_count"), int):
            if msg_type == "execute_input" and self._renumber:
                self._count_offset, self._renumber = self.execution_count - count, False
            content = {**content, "execution_count": count + self._count_offset}
        if not self.trusted_output:
            content = self._widgets.message(msg_type, confine_message(msg_type, content))
        for kind, body, parts in self._host.answer(msg_type, content, buffers):
            self.session.send(self.iopub_socket, kind, body, parent=parent, metadata=metadata,
                              buffers=parts or None, ident=self._topic(kind))

    async def _ask_input(self, content: dict[str, Any], req: Request) -> str:
        """Ask the frontend for input on the stdin channel; cancellable, unlike ipykernel's
        blocking ``_input_request``, so an interrupted cell leaves no reader behind."""
        assert self.session is not None
        while self.stdin_socket.poll(0):
            self.stdin_socket.recv_multipart()  # stale replies
        self.session.send(self.stdin_socket, "input_request", content, req.parent,
                          ident=req.ident)
        while True:
            if self.stdin_socket.poll(0):
                _, reply = self.session.recv(self.stdin_socket)
                if reply is not None:
                    return reply["content"].get("value", "")
            await asyncio.sleep(0.01)

    async def _forward(self, msg_type: str, parent: dict[str, Any], ident: list[bytes] | None
                       = None, reply: bool = True, box: str | None = None,
                       reply_metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send the frontend's request to the box (``box``, else the current one); the box's
        reply content (its metadata into ``reply_metadata``; output in it confined unless
        ``trusted_output``), or an error."""
        async def ask() -> dict[str, Any]:
            session = await self._session(box)
            answer = await session.request("shell", msg_type, parent["content"], parent,
                                           ident, reply, reply_metadata) or {}
            return answer if self.trusted_output else confine_reply(answer)
        try:
            return await self._on_main(ask())
        except BoxUnavailable as exc:
            return error_content("BoxUnavailable", str(exc))

    def _publish_execute_input(self, code: str, parent: Any, execution_count: int) -> None:
        """Left to the box's interpreter, which knows the execution count."""

    # -- handlers ------------------------------------------------------------------------

    async def do_execute(self, code: str, silent: bool, store_history: bool = True,
                         user_expressions: dict[str, Any] | None = None,
                         allow_stdin: bool = False, **kwargs: Any) -> dict[str, Any]:
        if self._notice:
            self.send_response(self.iopub_socket, "stream",
                               {"name": "stderr", "text": self._notice})
            self._notice = ""
        ident = self._get_shell_context_var(self._shell_parent_ident)
        parent = self.get_parent("shell")
        try:
            cell = split_cell(code)
        except MisplacedMagic as exc:
            return self._fail("UsageError", str(exc))
        if cell.magics:
            failure = self._host.run(cell.magics, parent)
            if failure:
                return self._fail(*failure)
        if cell.code != code:
            parent = {**parent, "content": {**parent["content"], "code": cell.code}}
        metadata: dict[str, Any] = {}
        reply = await self._forward("execute_request", parent, ident, box=cell.box,
                                    reply_metadata=metadata)
        usage = metadata.get("boxrun_usage")
        self._cell_usage = ((parent["header"]["msg_id"], usage)
                            if usage and self.cell_usage and not cell.host_only else None)
        if reply.get("ename") == "BoxUnavailable":
            self._drop_dead_session()
            if cell.host_only:  # `%boxrun stop` and the like need no interpreter
                reply = {"status": "ok", "execution_count": self.execution_count + 1,
                         "user_expressions": {}, "payload": []}
            else:
                self._publish_error(reply)
        if isinstance(count := reply.get("execution_count"), int):
            reply = {**reply, "execution_count": count + self._count_offset}
        self.execution_count = reply.setdefault("execution_count", self.execution_count)
        return reply

    def _fail(self, ename: str, evalue: str, tb: list[str] | None = None) -> dict[str, Any]:
        """An error reply for a failure here on the host, published as the cell's error."""
        reply = error_content(ename, evalue, tb)
        self._publish_error(reply)
        return reply

    def _publish_error(self, reply: dict[str, Any]) -> None:
        self.send_response(self.iopub_socket, "error",
                           {k: reply[k] for k in ("ename", "evalue", "traceback")},
                           ident=self._topic("error"))

    def _show(self, data: dict[str, Any], metadata: dict[str, Any]) -> None:
        """Publish a display bundle of the host (the ``%boxrun`` widgets)."""
        self.send_response(self.iopub_socket, "display_data",
                           {"data": data, "metadata": metadata, "transient": {}},
                           ident=self._topic("display_data"))

    def use_box(self, name: str,
                attached: tuple[dict[str, Any], dict[str, Any]] | None = None) -> None:
        """Run the next cells in box ``name`` (``%boxrun use``, the monitor's "use" button):
        the interpreter moves there (to session ``attached`` of the box, else a new one),
        and the one in the previous box ends."""
        self._target = None if name == self._own_box() else name
        self._attached = attached
        self._host.moved(name)
        old, self._boot = self._boot, None
        if old is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._retire(old)))

    def _live_session(self) -> BoxSession | None:
        """The interpreter session cells run in, if it is open and alive."""
        booted = self._booted()
        return None if booted is None or booted.dead else booted

    def in_box(self, name: str) -> bool:
        """Whether cells run in box ``name`` on a live interpreter (``%boxrun use``)."""
        return name == self._current_box() and self._live_session() is not None

    def session_in(self, name: str) -> str | None:
        """The id of this kernel's live interpreter session in box ``name`` (``%boxrun
        fork`` names it: a fork of a memory snapshot carries that interpreter)."""
        session = self._live_session() if name == self._current_box() else self._cells.get(name)
        return session.sid if session is not None and not session.dead else None

    def box_restored(self, name: str, memory: bool) -> None:
        """Box ``name`` was restored to a snapshot (``%boxrun restore``). With ``memory``
        its interpreter goes on from the snapshot and the session re-attaches to it; else
        the interpreter was restarted, and the next cell opens a new one. Either way the
        execution count goes on."""
        if name == self._current_box():
            self._renumber = True
        if memory or self._loop is None:
            return
        cell = self._cells.pop(name, None)
        if cell is not None:
            self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(cell.close()))
        if name == self._current_box() and self._boot is not None:
            old, self._boot = self._boot, None
            self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._retire(old)))

    @staticmethod
    async def _retire(boot: asyncio.Task[BoxSession]) -> None:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await (await boot).close()

    def finish_metadata(self, parent: dict[str, Any], metadata: dict[str, Any],
                        reply_content: dict[str, Any]) -> dict[str, Any]:
        metadata = super().finish_metadata(parent, metadata, reply_content)
        if self._cell_usage is not None and self._cell_usage[0] == parent["header"]["msg_id"]:
            metadata["boxrun_usage"] = self._cell_usage[1]  # not on an aborted cell's reply
        return metadata

    async def usage_request(self, stream: Any, ident: list[bytes],
                            parent: dict[str, Any]) -> None:
        """jupyter-resource-usage's Kernel Usage: the box's cpu and memory, not this process's."""
        async def usage() -> dict[str, Any]:
            session = await self._session()
            return await usage_reply(session.client, session.box)
        try:
            content = await self._on_main(usage())
        except BoxUnavailable as exc:
            content = error_content("BoxUnavailable", str(exc))
        self.session.send(stream, "usage_reply", content, parent, ident)  # type: ignore[union-attr]

    async def do_complete(self, code: str, cursor_pos: int) -> dict[str, Any]:
        return await self._forward("complete_request", self.get_parent())

    async def do_inspect(self, code: str, cursor_pos: int, detail_level: int = 0,
                         omit_sections: Any = ()) -> dict[str, Any]:
        return await self._forward("inspect_request", self.get_parent())

    async def do_is_complete(self, code: str) -> dict[str, Any]:
        return await self._forward("is_complete_request", self.get_parent())

    async def do_history(self, hist_access_type: str, output: bool, raw: bool,
                         **kwargs: Any) -> dict[str, Any]:
        return await self._forward("history_request", self.get_parent())

    async def comm_info_request(self, stream: Any, ident: list[bytes],
                                parent: dict[str, Any]) -> None:
        """The box's comms, and the host's (``%boxrun`` widgets)."""
        content = await self._forward("comm_info_request", parent)
        host = self._host.comms
        if host is not None and content.get("status") == "ok":
            target = parent["content"].get("target_name")
            content.setdefault("comms", {}).update(
                {cid: {"target_name": c.target_name} for cid, c in host.comms.items()
                 if target in (None, c.target_name)})
        self.session.send(stream, "comm_info_reply", content, parent, ident)  # type: ignore[union-attr]

    async def _forward_comm(self, stream: Any, ident: list[bytes],
                            parent: dict[str, Any]) -> None:
        """A comm message goes to the host's widget it is for, else into the box, in the
        background: ipykernel handles comms beside the request holding the shell and, once
        the comm's handler returns, restores that request as the shell's parent; a handler
        still waiting for the box then (while it starts) would restore it over the next
        request's, whose ``idle`` would go out under the wrong parent and never end it."""
        msg_type = parent["header"]["msg_type"]
        host = self._host.comms
        if host is not None and parent["content"].get("comm_id") in host.comms:
            getattr(host, msg_type)(stream, ident, parent)
            return
        self._host.note_control(msg_type, parent["content"])
        previous = self._last_delivery

        async def deliver() -> None:
            if previous is not None:  # a comm_msg never overtakes its comm_open
                await asyncio.wait([previous])
            reply = await self._forward(msg_type, parent, reply=False)
            if reply.get("status") == "error":
                self.log.warning("%s not delivered: %s", msg_type, reply["evalue"])
        task = self._last_delivery = asyncio.ensure_future(deliver())
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def kernel_info_request(self, stream: Any, ident: list[bytes],
                                  parent: dict[str, Any]) -> None:
        """Answer once the box's interpreter says its language (or after ``boot_wait``)."""
        with contextlib.suppress(BoxUnavailable, asyncio.TimeoutError):
            await asyncio.wait_for(self._on_main(self._session()), self.boot_wait)
        await super().kernel_info_request(stream, ident, parent)

    async def interrupt_request(self, stream: Any, ident: list[bytes],
                                parent: dict[str, Any]) -> None:
        """Interrupt the box's interpreter, or a ``%boxrun`` line running here."""
        if self._host.busy:
            self._host.interrupt()
            self.session.send(stream, "interrupt_reply", {"status": "ok"}, parent, ident=ident)  # type: ignore[union-attr]
            return

        async def interrupt() -> None:
            # Until the box is open nothing runs in it, and this does not wait for it:
            # jupyter_client interrupts before every shutdown, and gives the kernel 5 s.
            session = self._booted()
            if session is not None and not session.dead:
                await session.client.interrupt(session.box["id"], session.sid)
        content: dict[str, Any] = {"status": "ok"}
        try:
            await self._on_main(interrupt())
        except BoxUnavailable as exc:
            content = error_content("BoxUnavailable", str(exc))
        self.session.send(stream, "interrupt_reply", content, parent, ident=ident)  # type: ignore[union-attr]

    async def do_shutdown(self, restart: bool) -> dict[str, Any]:
        await self._on_main(self._close(remove=not (restart or self.keep_box)))
        return {"status": "ok", "restart": restart}

    async def _close(self, remove: bool) -> None:
        """End the sessions and, if ``remove``, the kernel's own box; a restart finds the
        box again. The removal comes first and ends the own box's sessions with it: it is
        one call, done well within jupyter_client's wait before it kills the kernel."""
        boot, self._boot = self._boot, None
        sessions = list(self._cells.values())
        self._cells.clear()
        if boot is not None:
            boot.cancel()  # a box still being opened: jupyter_client will not wait for it
            with contextlib.suppress(BoxUnavailable, asyncio.CancelledError):
                sessions.append(await boot)
        for session in sessions:  # no word of the box going away reaches the notebook
            await session.stop()
        removed = None
        # also when the shutdown came while the box was being opened: it may exist already
        if remove and self._client is not None:
            removed = self._own_box()
            with contextlib.suppress(BoxUnavailable):
                await self._client.remove_box(removed)
        for session in sessions:
            if session.box["name"] != removed:
                await session.end()
        if self._client is not None:
            await self._client.aclose()
