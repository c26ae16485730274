"""The ``python`` session kind: the agent runs the code itself (stdlib only, in the box)."""

from __future__ import annotations

import ast
import builtins
import codeop
import linecache
import os
import pydoc
import queue
import re
import signal
import sys
import threading
import traceback
from base64 import b64encode
from typing import Any

from agent import Transport, message

LANGUAGE_INFO = {
    "name": "python", "version": sys.version.split()[0], "mimetype": "text/x-python",
    "file_extension": ".py", "pygments_lexer": "ipython3", "nbconvert_exporter": "python",
    "codemirror_mode": {"name": "ipython", "version": 3},
}
#: ``_repr_*_`` methods → the MIME type of what they return.
REPRS = {"_repr_html_": "text/html", "_repr_markdown_": "text/markdown",
         "_repr_svg_": "image/svg+xml", "_repr_png_": "image/png", "_repr_jpeg_": "image/jpeg",
         "_repr_latex_": "text/latex", "_repr_json_": "application/json"}


def mime_bundle(obj: Any) -> dict[str, Any]:
    """The display data of ``obj``: ``text/plain`` and whatever its ``_repr_*_`` give."""
    data: dict[str, Any] = {"text/plain": repr(obj)}
    for method, mime in REPRS.items():
        value = getattr(obj, method, None)
        value = value() if callable(value) and not isinstance(obj, type) else None
        if value is not None:
            data[mime] = b64encode(value).decode() if isinstance(value, bytes) else value
    bundle = getattr(obj, "_repr_mimebundle_", None)
    if callable(bundle) and not isinstance(obj, type):
        found = bundle()
        data.update(found[0] if isinstance(found, tuple) else found or {})
    return data


class Stream:
    """``sys.stdout``/``sys.stderr`` of the code: ``stream`` messages, a line at a time."""

    def __init__(self, interp: Interpreter, name: str) -> None:
        self.interp, self.name, self.buf = interp, name, ""

    def write(self, text: str) -> int:
        self.buf += text
        if "\n" in self.buf:
            cut = self.buf.rindex("\n") + 1
            self._emit(self.buf[:cut])
            self.buf = self.buf[cut:]
        return len(text)

    def flush(self) -> None:
        if self.buf:
            self._emit(self.buf)
            self.buf = ""

    def _emit(self, text: str) -> None:
        self.interp.iopub("stream", {"name": self.name, "text": text})

    def isatty(self) -> bool:
        return False


class Interpreter:
    """Reads requests on a thread; runs shell requests one at a time on the main thread."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.ns: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        self.count = 0
        self.parent: dict[str, Any] = {}
        self.shell: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.stdin: queue.Queue[dict[str, Any]] = queue.Queue()
        self.executing = False
        builtins.display = self.display  # type: ignore[attr-defined]
        builtins.input = self.input

    def iopub(self, msg_type: str, content: dict[str, Any]) -> None:
        self.transport.report(message("iopub", msg_type, content, self.parent.get("msg_id")))

    def display(self, *objs: Any) -> None:
        """Show objects as ``display_data``, like IPython's ``display``."""
        for obj in objs:
            self.iopub("display_data", {"data": mime_bundle(obj), "metadata": {}, "transient": {}})

    def input(self, prompt: str = "") -> str:
        """``input()`` through the client: an ``input_request`` on the stdin channel."""
        if not self.parent.get("content", {}).get("allow_stdin", True):
            raise RuntimeError("input() is not supported by the client of this session")
        sys.stdout.flush()
        self.transport.report(message("stdin", "input_request", {"prompt": str(prompt),
                                      "password": False}, self.parent.get("msg_id")))
        return self.stdin.get()["content"].get("value", "")

    def run(self) -> None:
        """Serve until stdin ends or a shutdown request."""
        sys.stdout, sys.stderr = Stream(self, "stdout"), Stream(self, "stderr")
        self.transport.report({"type": "ready", "kernel_info": self.kernel_info()})
        threading.Thread(target=self._read, daemon=True).start()
        while True:
            try:
                req = self.shell.get()
                if req is None:
                    return
                self.parent = req
                self.iopub("status", {"execution_state": "busy"})
                reply = getattr(self, req["msg_type"], lambda _: None)(req.get("content") or {})
                if reply is not None:
                    self.transport.report(message("shell", req["msg_type"][:-8] + "_reply",
                                                  reply, req.get("msg_id")))
                self.iopub("status", {"execution_state": "idle"})
            except KeyboardInterrupt:  # an interrupt that came just after the code ended
                continue

    def _read(self) -> None:
        while (requests := self.transport.read()) is not None:
            for req in requests:
                kind = req.get("msg_type", "")
                if req["op"] == "interrupt" or kind == "interrupt_request":
                    if self.executing:
                        os.kill(os.getpid(), signal.SIGINT)
                elif req["op"] == "restart":
                    self.transport.reexec()
                elif req["channel"] == "stdin":
                    self.stdin.put(req)
                elif req["channel"] == "shell" and kind.endswith("_request"):
                    self.shell.put(req)
        self.shell.put(None)

    # --- the requests ----------------------------------------------------------------

    def kernel_info_request(self, _: dict[str, Any]) -> dict[str, Any]:
        return self.kernel_info()

    def kernel_info(self) -> dict[str, Any]:
        return {"status": "ok", "protocol_version": "5.3", "implementation": "boxrun-python",
                "implementation_version": "1", "language_info": LANGUAGE_INFO,
                "banner": f"Python {sys.version.split()[0]} in a BoxRun box (no ipykernel:"
                          " plain Python, no widgets or magics)", "help_links": []}

    def execute_request(self, content: dict[str, Any]) -> dict[str, Any]:
        code, silent = content.get("code", ""), content.get("silent", False)
        if not silent and content.get("store_history", True):
            self.count += 1
        if not silent:
            self.iopub("execute_input", {"code": code, "execution_count": self.count})
        filename = f"<cell {self.count}>"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        self.executing = True
        try:
            tree = ast.parse(code, filename)
            last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
            exec(compile(tree, filename, "exec"), self.ns)
            if last is not None:
                value = eval(compile(ast.Expression(last.value), filename, "eval"), self.ns)
                if value is not None and not silent:
                    self.ns["_"] = value
                    self.iopub("execute_result", {"data": mime_bundle(value), "metadata": {},
                                                  "execution_count": self.count})
        except BaseException as exc:  # noqa: BLE001 - the user's error is the reply
            return self._error(exc)
        finally:
            self.executing = False
            sys.stdout.flush()
            sys.stderr.flush()
        return {"status": "ok", "execution_count": self.count, "user_expressions": {},
                "payload": []}

    def _error(self, exc: BaseException) -> dict[str, Any]:
        tb = exc.__traceback__
        while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<cell"):
            tb = tb.tb_next  # drop the agent's own frames
        lines = traceback.format_exception(type(exc), exc, tb)
        error = {"ename": type(exc).__name__, "evalue": str(exc),
                 "traceback": [line.rstrip("\n") for line in lines]}
        self.iopub("error", error)
        return {"status": "error", "execution_count": self.count, **error}

    def is_complete_request(self, content: dict[str, Any]) -> dict[str, Any]:
        code = content.get("code", "")
        try:
            done = codeop.compile_command(code, "<cell>", "exec") is not None
        except (SyntaxError, ValueError, OverflowError):
            return {"status": "invalid"}
        lines = code.rstrip("\n").splitlines() or [""]
        indent = re.match(r"\s*", lines[-1]).group() + ("    " if code.rstrip().endswith(":") else "")
        return {"status": "complete"} if done else {"status": "incomplete", "indent": indent}

    def complete_request(self, content: dict[str, Any]) -> dict[str, Any]:
        import rlcompleter  # noqa: PLC0415 - only when asked

        code, pos = content.get("code", ""), content.get("cursor_pos", 0)
        token = re.search(r"[\w.]*$", code[:pos]).group()
        completer, matches = rlcompleter.Completer(self.ns), []
        while (match := completer.complete(token, len(matches))) is not None:
            matches.append(match)
        return {"status": "ok", "matches": [m.rstrip("(") for m in matches],
                "cursor_start": pos - len(token), "cursor_end": pos, "metadata": {}}

    def inspect_request(self, content: dict[str, Any]) -> dict[str, Any]:
        code, pos = content.get("code", ""), content.get("cursor_pos", 0)
        name = re.search(r"[\w.]*$", code[:pos]).group() + re.match(r"\w*", code[pos:]).group()
        try:
            obj = eval(name, self.ns) if name else None  # noqa: S307 - the user's own names
        except Exception:  # noqa: BLE001 - not found
            return {"status": "ok", "found": False, "data": {}, "metadata": {}}
        text = pydoc.render_doc(obj, title="%s", renderer=pydoc.plaintext)
        return {"status": "ok", "found": True, "data": {"text/plain": text}, "metadata": {}}

    def shutdown_request(self, content: dict[str, Any]) -> dict[str, Any]:
        self.shell.put(None)
        return {"status": "ok", "restart": bool(content.get("restart"))}
