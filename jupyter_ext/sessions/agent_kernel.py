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
  its IOPub thread;
- the main thread sends its IOPub messages itself while the IOPub thread is idle
  (:func:`quick_iopub`).

JupyterLab's widget manager opens its ``jupyter.widget.control`` comm as soon as it
connects, before any cell has imported ipywidgets. Unanswered, the kernel logs
``No such comm target`` and then ``No such comm`` for each message of that comm, and
ipykernel relays its stderr under the next cell. Instead, ipywidgets' targets are held
here: the first comm opened for one imports ipywidgets (which registers its own) and
goes to it; without ipywidgets the comm is closed, which the frontend takes as "no
widgets here".
"""

from __future__ import annotations

import os
import sys
import threading
from functools import partial
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


#: Seconds between the IOPub thread's looks for subscriptions a send of the main thread
#: took the wake-up of (see :func:`quick_iopub`).
SUBSCRIPTION_SWEEP = 0.5


def quick_iopub(thread_class: Any) -> None:
    """Let ``thread_class`` (ipykernel's IOPubThread) send a message of the main thread
    itself when the IOPub thread has nothing queued and is not using the socket, rather
    than waking that thread for it (a few system calls and a hand-off between threads,
    for each message). A lock keeps the socket to one thread at a time: the IOPub thread
    holds it while it runs its queue and while it reads subscriptions. A message sent
    while anything is queued joins the queue, so messages leave in the order sent. An
    IOPubThread without the queue this relies on (another ipykernel) is left as it is.

    A send may take the socket's wake-up meant for a new subscription (libzmq signals
    its descriptor once for pending work), so the main thread sends nothing itself until
    the thread has read a first subscription (the client that started the kernel gets
    its ``iopub_welcome`` at once); until then the thread also looks for subscriptions
    after each of its own sends, which may take the wake-up as well (else the first
    half second of a kernel went through the queue); and it reads subscriptions every
    :data:`SUBSCRIPTION_SWEEP` seconds: at worst a later client's ``iopub_welcome`` comes
    that much later; what it subscribed to is in force at once either way."""
    if not all(hasattr(thread_class, name) for name in ("_handle_event", "_really_send")):
        return
    init, queued, handle = (thread_class.__init__, thread_class.send_multipart,
                            thread_class._handle_event)
    listen = getattr(thread_class, "_setup_xpub_listener", None)  # ipykernel 7: XPUB
    subscription = getattr(thread_class, "_handle_subscription", None)

    def init_locked(self: Any, *args: Any, **kwargs: Any) -> None:
        self._boxrun_lock = threading.Lock()
        self._boxrun_subscribed = listen is None or subscription is None
        init(self, *args, **kwargs)
        self._boxrun_direct = hasattr(self, "_events")

    def subscribed(self: Any, *args: Any) -> None:
        subscription(self, *args)
        self._boxrun_subscribed = True

    def handle_locked(self: Any, *args: Any) -> None:
        with self._boxrun_lock:
            handle(self, *args)
            if not self._boxrun_subscribed and hasattr(self, "_boxrun_read"):
                self._boxrun_read()  # its sends may have taken the first one's wake-up

    def setup(self: Any) -> None:
        listen(self)
        stream, lock = getattr(self, "_xpub_stream", None), self._boxrun_lock
        if stream is None:  # not XPUB: no subscriptions to read
            self._boxrun_subscribed = True
            return
        events = stream._handle_events

        def events_locked(*args: Any) -> None:
            with lock:
                events(*args)

        def sweep() -> None:  # tornado's PeriodicCallback runs a coroutine: not here
            if not stream.closed():
                events_locked(stream.socket, 0)
                self.io_loop.call_later(SUBSCRIPTION_SWEEP, sweep)

        # the thread has not started: take the stream's handler over
        self._boxrun_read = partial(events, stream.socket, 0)  # the lock held
        stream._handle_events = events_locked
        self.io_loop.remove_handler(self.socket)
        self.io_loop.add_handler(self.socket, events_locked, self.io_loop.READ)
        self.io_loop.call_later(SUBSCRIPTION_SWEEP, sweep)

    def send_multipart(self: Any, *args: Any, **kwargs: Any) -> None:
        if (self._boxrun_direct and self._boxrun_subscribed
                and threading.current_thread() is threading.main_thread()
                and not self._events and self.thread.is_alive()
                and self._boxrun_lock.acquire(blocking=False)):
            try:
                if not self._events:
                    self._really_send(*args, **kwargs)
                    return
            finally:
                self._boxrun_lock.release()
        queued(self, *args, **kwargs)

    thread_class.__init__ = init_locked
    thread_class._handle_event = handle_locked
    thread_class.send_multipart = send_multipart
    if listen is not None and subscription is not None:
        thread_class._setup_xpub_listener = setup
        thread_class._handle_subscription = subscribed


def quick_app() -> Any:
    """ipykernel's IPKernelApp, made quick: without a shell-channel thread (its kernel
    then says it has no subshells), with :func:`quick_flush` and :func:`quick_iopub`. The
    BoxRun kernel on the host starts with it too."""
    from ipykernel.iostream import IOPubThread, OutStream  # noqa: PLC0415 - where ipykernel is
    from ipykernel.kernelapp import IPKernelApp  # noqa: PLC0415

    class QuickKernelApp(IPKernelApp):
        def init_sockets(self) -> None:
            super().init_sockets()
            self.shell_channel_thread = None

    quick_flush(OutStream)
    quick_iopub(IOPubThread)
    return QuickKernelApp


def start() -> None:
    """Start the box's kernel (command line: ipykernel's) from :func:`quick_app`, without
    its debugger: nothing debugs it through the relay, and loading debugpy costs 50 ms
    and a warning on stderr; code in the box can still import debugpy."""
    here = os.path.dirname(os.path.abspath(__file__))
    if os.environ.get("LD_PRELOAD") == os.path.join(here, "pidcache.so"):
        del os.environ["LD_PRELOAD"]  # the agent's pid cache, loaded: not for what runs here
    sys.modules["debugpy"] = None  # type: ignore[assignment]
    app = quick_app().instance()
    app.initialize()
    del sys.modules["debugpy"]
    hold_widget_targets(app.kernel.comm_manager)
    app.start()
