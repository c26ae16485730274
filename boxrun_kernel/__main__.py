"""``python -m boxrun_kernel -f FILE``: the kernel, listening and its box opened while it
starts."""

import sys

from . import listen, prestart

listen.begin(sys.argv)
prestart.begin(sys.argv)

from .app import BoxRunKernelApp  # noqa: E402 - after the box is on its way
from .kernel import BoxRunKernel  # noqa: E402

BoxRunKernelApp.launch_instance(kernel_class=BoxRunKernel)
