"""The ``shell`` session kind: a persistent ``sh`` in the box, one script per execute."""

from __future__ import annotations

import asyncio
import codecs
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from .agent import message
from .link import Link
from .models import Session

if TYPE_CHECKING:
    from ..backends.base import Process
    from ..core.manager import BoxManager

MARK = "__boxrun_done_"
BANNER = ("No Python in this box: cells run as POSIX shell scripts in one persistent sh"
          " (variables and cd persist); no input(), completion or widgets.")
KERNEL_INFO = {"status": "ok", "protocol_version": "5.3", "implementation": "boxrun-shell",
               "implementation_version": "1", "banner": BANNER, "help_links": [],
               "language_info": {"name": "sh", "mimetype": "text/x-sh", "file_extension": ".sh",
                                 "codemirror_mode": "shell", "pygments_lexer": "bash"}}
#: SIGINT the children of the shell whose pid follows (the command a cell is running),
#: waiting up to a second for one to appear (the cell's script may not have begun).
INTERRUPT = ('i=0; while [ $i -lt 20 ]; do for s in /proc/[0-9]*/stat; do read -r pid comm state'
             ' ppid rest < "$s" 2>/dev/null && [ "$ppid" = "$0" ] && kill -INT "$pid" && hit=1;'
             ' done; [ -n "$hit" ] && exit 0; i=$((i + 1)); sleep 0.05; done')


class ShellLink(Link):
    """Jupyter requests turned into scripts for ``sh``, its output into messages."""

    def __init__(self, boxes: BoxManager, box_id: str, session: Session, env: dict[str, str]
                 ) -> None:
        self.boxes, self.box_id, self.session, self.env = boxes, box_id, session, env
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.work: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.process: Process | None = None
        self.pid = ""
        #: An interrupt came during the running cell (which may have been stopped before
        #: its code began: it then ends with status 0, and is reported as interrupted).
        self.interrupted = False
        self.token = ""
        self.parent: str | None = None
        self.done: dict[str, asyncio.Future[str]] = {}
        self.tasks: list[asyncio.Task[Any]] = []

    @classmethod
    async def start(cls, boxes: BoxManager, box_id: str, session: Session,
                    env: dict[str, str]) -> ShellLink:
        """Start the shell; it reports ``ready`` at once."""
        link = cls(boxes, box_id, session, env)
        await link._spawn()
        link.tasks.append(asyncio.create_task(link._serve()))
        return link

    async def _spawn(self) -> None:
        self.process = process = await self.boxes.spawn(self.box_id, ["sh"], self.env, self.session.cwd)
        await process.write_stdin(b"echo $$\n")
        first = await anext(process.stdout)
        self.pid = first.decode().split()[0]
        self.tasks += [asyncio.create_task(self._pump("stdout", process.stdout)),
                       asyncio.create_task(self._pump("stderr", process.stderr)),
                       asyncio.create_task(self._watch(process))]
        self.queue.put_nowait({"type": "ready", "kernel_info": KERNEL_INFO})

    async def _watch(self, process: Process) -> None:
        await process.wait()
        if process is self.process:  # not replaced by a restart
            self.queue.put_nowait(None)

    async def reports(self) -> AsyncIterator[dict[str, Any]]:
        while (report := await self.queue.get()) is not None:
            yield report
        for task in self.tasks:
            task.cancel()

    async def request(self, req: dict[str, Any]) -> None:
        if req["op"] == "send" and req["channel"] in ("shell", "control"):
            self.work.put_nowait(req)
        elif req["op"] == "interrupt":
            self.interrupted = True
            proc = await self.boxes.spawn(self.box_id, ["sh", "-c", INTERRUPT, self.pid], {}, None)
            await proc.close_stdin()
            await proc.wait()
        elif req["op"] == "restart":
            old, self.process = self.process, None
            if old is not None:
                old.kill()
            await self._spawn()

    async def wait(self) -> int:
        assert self.process is not None
        return await self.process.wait()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()

    def _report(self, channel: str, msg_type: str, content: dict[str, Any]) -> None:
        self.queue.put_nowait(message(channel, msg_type, content, self.parent))

    async def _serve(self) -> None:
        count = 0
        while True:
            req = await self.work.get()
            self.parent = req.get("msg_id")
            self._report("iopub", "status", {"execution_state": "busy"})
            kind, content = req["msg_type"], req.get("content") or {}
            reply: dict[str, Any] = {"status": "ok"}
            if kind == "kernel_info_request":
                reply = KERNEL_INFO
            elif kind == "execute_request":
                count += 1
                self._report("iopub", "execute_input", {"code": content.get("code", ""),
                                                        "execution_count": count})
                self.interrupted = False
                status = await self._execute(content.get("code", ""))
                reply = {"status": "ok", "execution_count": count, "user_expressions": {}}
                if status == 0 and self.interrupted:
                    reply = {"status": "error", "execution_count": count, "ename": "Interrupted",
                             "evalue": "interrupted", "traceback": ["interrupted"]}
                elif status != 0:
                    reply = {"status": "error", "execution_count": count, "ename": "ExitStatus",
                             "evalue": str(status), "traceback": [f"exit status {status}"]}
            elif kind == "complete_request":
                pos = content.get("cursor_pos", 0)
                reply.update(matches=[], cursor_start=pos, cursor_end=pos, metadata={})
            elif kind == "inspect_request":
                reply.update(found=False, data={}, metadata={})
            elif kind == "is_complete_request":
                reply = {"status": "unknown"}
            if kind.endswith("_request"):
                self._report(req["channel"], kind[:-8] + "_reply", reply)
            self._report("iopub", "status", {"execution_state": "idle"})

    async def _execute(self, code: str) -> int:
        self.token = token = uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        self.done = {"stdout": loop.create_future(), "stderr": loop.create_future()}
        script = (f"eval \"$(cat <<'{token}'\n{code}\n{token}\n)\" </dev/null\n"
                  f"printf '{MARK}{token} %d\\n' $?; printf '{MARK}{token}\\n' >&2\n")
        assert self.process is not None
        await self.process.write_stdin(script.encode())
        status = await self.done["stdout"]
        await self.done["stderr"]
        return int(status)

    async def _pump(self, name: str, chunks: AsyncIterator[bytes]) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        buf = ""
        async for chunk in chunks:
            buf += decoder.decode(chunk)
            mark = MARK + self.token
            while (at := buf.find(mark)) >= 0 and (end := buf.find("\n", at + 1)) >= 0:
                self._stream(name, buf[:at])
                self.done[name].set_result(buf[at + len(mark):end].strip())
                buf = buf[end + 1:]
            # hold back what may be the start of the marker
            keep = next((k for k in range(min(len(buf), len(mark)), 0, -1)
                         if mark.startswith(buf[-k:])), 0)
            if (at := buf.find(mark)) >= 0:
                keep = len(buf) - at
            self._stream(name, buf[:len(buf) - keep])
            buf = buf[len(buf) - keep:]

    def _stream(self, name: str, text: str) -> None:
        if text:
            self._report("iopub", "stream", {"name": name, "text": text})
