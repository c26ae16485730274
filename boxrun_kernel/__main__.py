"""``python -m boxrun_kernel -f FILE``: the kernel, its box opened while it starts."""

import sys
from typing import Any

from . import listen, prestart

listen.begin(sys.argv)
prestart.begin(sys.argv)

# The box's ipykernel starts the same way: quick on a cell's round trip.
import zmq  # noqa: E402 - with ipykernel

from jupyter_ext.sessions.agent_kernel import quick_app  # noqa: E402 - after the box is on its way

from .kernel import BoxRunKernel  # noqa: E402


class BoxRunKernelApp(quick_app()):  # type: ignore[misc] - a class made at run time
    """The kernel's app: ipykernel's, made quick, without what only user code here needs."""

    def init_pdb(self) -> None:
        """No user code runs in this process: IPython's interruptible pdb (35 ms of the
        kernel's start to import) would serve nothing."""

    def _bind_socket(self, s: Any, port: int) -> int:
        """Bind to the socket :mod:`.listen` listens on for ``port``, if there is one."""
        fd = listen.take(port)
        if fd is not None:
            s.setsockopt(zmq.USE_FD, fd)
        return super()._bind_socket(s, port)


BoxRunKernelApp.launch_instance(kernel_class=BoxRunKernel)
