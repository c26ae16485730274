"""The box's usage as Jupyter asks for it: ``usage_reply`` content."""

from __future__ import annotations

from typing import Any

from ..client import BoxRunClient


async def usage_reply(client: BoxRunClient, box: dict[str, Any]) -> dict[str, Any]:
    """``usage_reply`` content for ``box``, in the keys jupyter-resource-usage's Kernel Usage
    panel reads (``kernel_cpu`` %, ``kernel_memory`` bytes, ``host_virtual_memory``...),
    from the box's metrics (the box is the kernel's "host"); the sample itself as ``box``."""
    sample = await client.call("GET", f"/v1/boxes/{box['id']}/metrics")
    used = sample.get("memory_bytes") or 0
    total = sample.get("memory_limit_bytes") or box["memory_mb"] * 2**20
    return {"hostname": box["name"], "kernel_cpu": sample.get("cpu_percent") or 0.0,
            "kernel_memory": used, "host_cpu_percent": sample.get("cpu_percent") or 0.0,
            "cpu_count": sample.get("cpu_limit") or box["cpu"],
            "host_virtual_memory": {"total": total, "used": used, "available": total - used,
                                    "percent": round(100 * used / total, 1) if total else 0.0},
            "box": sample}
