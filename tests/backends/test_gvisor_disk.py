"""The disk limit of gVisor boxes: the namespace backend's test of it, run here against
a gVisor backend (the fixtures of :mod:`.test_gvisor`): writing past ``disk_size_gb``
fails with ENOSPC in the box, the box still works, and its layer survives stop/start
and is deleted, loop device and all, on remove."""

from __future__ import annotations

from .test_gvisor import backend, gv_state, pytestmark
from .test_limits import test_disk_size_bounds_the_writable_layer

__all__ = ["backend", "gv_state", "pytestmark", "test_disk_size_bounds_the_writable_layer"]
