from ipykernel.kernelapp import IPKernelApp  # noqa: I001
from .kernel import BoxRunKernel
IPKernelApp.launch_instance(kernel_class=BoxRunKernel)
