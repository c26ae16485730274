"""What the BoxRun kernel loads before its first cell: its start is held to a local
ipykernel's (bench/bench_kernel.py), so what only later work needs waits for it."""

import subprocess
import sys

#: Modules the kernel needs only for an HTML widget (bleach), a call of the HTTP API
#: (httpx; a kernel whose box prestart opened talks over the channel) or a debugger.
LATER = ("bleach", "httpx", "httpcore", "debugpy", "IPython.core.debugger")


def test_the_kernel_module_loads_none_of_what_later_work_needs() -> None:
    script = ("import sys, boxrun_kernel.kernel, boxrun_kernel.client;"
              f"print(sorted(m for m in {LATER!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_kernel_info_claims_no_debugger_and_imports_none() -> None:
    script = ("import sys; from boxrun_kernel.kernel import BoxRunKernel;"
              "info = BoxRunKernel.kernel_info.fget(BoxRunKernel());"
              "print(info['supported_features'], info['protocol_version'] > '5',"
              " 'debugpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["[]", "True", "False"]


def test_the_apps_address_needs_no_search_of_the_hosts_interfaces() -> None:
    script = ("import sys; from boxrun_kernel.app import BoxRunKernelApp;"
              "app = BoxRunKernelApp(transport='tcp');"
              "print(app._ip_default(), 'psutil' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["127.0.0.1", "False"]
