"""``python -m boxrun_kernel -f FILE``: the kernel, its box opened while it starts."""

import sys

from . import prestart

prestart.begin(sys.argv)

# The box's ipykernel starts the same way: quick on a cell's round trip.
from jupyter_ext.sessions.agent_kernel import quick_app  # noqa: E402 - after the box is on its way

from .kernel import BoxRunKernel  # noqa: E402

quick_app().launch_instance(kernel_class=BoxRunKernel)
