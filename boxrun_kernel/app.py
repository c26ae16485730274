"""The BoxRun kernel's app: ipykernel's, started as the box's kernel is (quick on a cell's
round trip), without what only user code on the host would need."""

from __future__ import annotations

from typing import Any

import zmq

from jupyter_ext.sessions.agent_kernel import quick_app

from . import listen


class BoxRunKernelApp(quick_app()):  # type: ignore[misc] - a class made at run time
    """ipykernel's app for :class:`.kernel.BoxRunKernel`."""

    def init_pdb(self) -> None:
        """No user code runs in this process: IPython's interruptible pdb (35 ms of the
        kernel's start to import) would serve nothing."""

    def _ip_default(self) -> str:
        """Loopback for TCP, as jupyter_client's default, without its search of the host's
        interfaces (psutil, 15 ms), which it makes even when the connection file names
        the address."""
        return "127.0.0.1" if self.transport == "tcp" else super()._ip_default()

    def _bind_socket(self, s: Any, port: int) -> int:
        """Bind to the socket :mod:`.listen` listens on for ``port``, if there is one."""
        fd = listen.take(port)
        if fd is not None:
            s.setsockopt(zmq.USE_FD, fd)
        return super()._bind_socket(s, port)
