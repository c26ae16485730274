"""The box's ipykernel, as the agent starts it (``agent.LAUNCH``; stdlib only until
:func:`quick_app` imports ipykernel).

Started for a short cell round trip: on gVisor's ptrace platform every system call of
the kernel costs tens of microseconds, and a trivial cell made about 600 of them, most
of them threads of the kernel waking each other (docs/sessions.md, "Cell round trip"):

- no shell-channel thread (ipykernel 7 routes every shell message through one, for
  kernel subshells, which nothing uses through the agent): messages are handled on the
  main thread, as ipykernel 6 did;
- ``sys.stdout.flush()`` with nothing written since the last flush returns at once;
  ipykernel flushes stdout or stderr about seven times a cell, each a round trip to
  its IOPub thread.

JupyterLab's widget manager opens its ``jupyter.widget.control`` comm as soon as it
connects, before any cell has imported ipywidgets. Unanswered, the kernel logs
``No such comm target`` and then ``No such comm`` for each message of that comm, and
ipykernel relays its stderr under the next cell. Instead, ipywidgets' targets are held
here: the first comm opened for one imports ipywidgets (which registers its own) and
goes to it; without ipywidgets the comm is closed, which the frontend takes as "no
widgets here".
"""

from __future__ import annotations

import sys
from typing import Any

TARGETS = ("jupyter.widget", "jupyter.widget.control")


def hold_widget_targets(manager: Any) -> None:
    """Register placeholders for ipywidgets' comm targets on ``manager`` (a CommManager)."""

    def opened(comm: Any, msg: dict[str, Any]) -> None:
        for name in TARGETS:
            if manager.targets.get(name) is opened:
                manager.unregister_target(name, opened)
        try:
            import ipywidgets  # noqa: F401, PLC0415 - registers ipywidgets' targets
        except ImportError:
            pass
        handler = manager.targets.get(msg["content"]["target_name"])
        if handler is None:
            comm.close()
        else:
            handler(comm, msg)

    for name in TARGETS:
        manager.targets.setdefault(name, opened)


#: What ipykernel's OutStream holds while something is still to be sent (or echoed), the
#: last whether its IOPub thread is sending it now (read last: a send clears the others).
PENDING = ("_buffers", "_flush_pending", "_subprocess_flush_pending", "echo", "_boxrun_sending")


def quick_flush(stream_class: Any) -> None:
    """Make ``stream_class.flush`` (ipykernel's OutStream) return at once when nothing is
    buffered, scheduled or being sent: what a flush would wait for is then on the IOPub
    socket already, before a reply sent next on another socket, as with a full flush.
    An OutStream without these attributes (another ipykernel) always flushes."""
    flush, send = stream_class.flush, stream_class._flush

    def sending(self: Any) -> None:
        self._boxrun_sending = True
        try:
            send(self)
        finally:
            self._boxrun_sending = False

    def quick(self: Any) -> None:
        if any(getattr(self, name, True) for name in PENDING):
            flush(self)

    stream_class._boxrun_sending = False
    stream_class._flush = sending
    stream_class.flush = quick


def quick_app() -> Any:
    """ipykernel's IPKernelApp, made quick: without a shell-channel thread (its kernel
    then says it has no subshells), with :func:`quick_flush`. The BoxRun kernel on the
    host starts with it too."""
    from ipykernel.iostream import OutStream  # noqa: PLC0415 - where ipykernel is
    from ipykernel.kernelapp import IPKernelApp  # noqa: PLC0415

    class QuickKernelApp(IPKernelApp):
        def init_sockets(self) -> None:
            super().init_sockets()
            self.shell_channel_thread = None

    quick_flush(OutStream)
    return QuickKernelApp


def start() -> None:
    """Start the box's kernel (command line: ipykernel's) from :func:`quick_app`, without
    its debugger: nothing debugs it through the relay, and loading debugpy costs 50 ms
    and a warning on stderr; code in the box can still import debugpy."""
    sys.modules["debugpy"] = None  # type: ignore[assignment]
    app = quick_app().instance()
    app.initialize()
    del sys.modules["debugpy"]
    hold_widget_targets(app.kernel.comm_manager)
    app.start()
