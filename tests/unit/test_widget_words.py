"""What the kernel's widgets say of a server's isolation, from ``/v1/info``."""

from __future__ import annotations

from boxrun_kernel.widgets.render import backend_reason, isolation


def test_each_backend_is_named_and_the_reason_kept() -> None:
    gvisor = {"backend": "gvisor", "isolation": "gvisor",
              "backend_reason": "auto: gVisor user-space kernel, not a micro-VM: no KVM"}
    assert isolation(gvisor) == "gVisor user-space kernel, gvisor backend"
    assert backend_reason(gvisor) == gvisor["backend_reason"]
    assert isolation({"backend": "boxlite", "isolation": "vm"}).startswith("micro-VM")
    assert isolation({}) == "unknown, ? backend" and backend_reason({}) == ""
