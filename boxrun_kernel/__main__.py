"""``python -m boxrun_kernel -f FILE``: the kernel, its box opened while it starts."""

import sys

from . import prestart

prestart.begin(sys.argv)

from ipykernel.kernelapp import IPKernelApp  # noqa: E402 - after the box is on its way

from .kernel import BoxRunKernel  # noqa: E402

IPKernelApp.launch_instance(kernel_class=BoxRunKernel)
