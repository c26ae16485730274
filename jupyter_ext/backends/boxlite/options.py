"""What BoxLite is asked for: a box spec as BoxLite options, and registry or local image."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from pathlib import Path

import boxlite

from ...images.aliases import ALIASES, local_recipe
from ...images.store import ImageStore
from ..base import BoxSpec

#: The registry of the alias catalog, probed once to learn whether pulls can work.
REGISTRY_URL = "https://registry-1.docker.io/v2/"
REGISTRY_TIMEOUT = 2.0


def box_options(spec: BoxSpec) -> boxlite.BoxOptions:
    """BoxLite options for ``spec``: its local OCI layout if it has one, else its reference.

    The box is detached: its micro-VM outlives the server that booted it, and the next
    server adopts it. No auto-delete, no auto-resume: the manager decides when it runs.
    """
    source = {"rootfs_path": str(spec.oci_layout)} if spec.oci_layout else {"image": spec.image}
    outbound = boxlite.OutboundNetworkSpec(mode="enabled" if spec.network else "disabled")
    return boxlite.BoxOptions(
        **source,
        cpus=spec.cpu,
        memory_mib=spec.memory_mb,
        disk_size_gb=spec.disk_size_gb,
        working_dir=spec.workdir,
        env=list(spec.env.items()),
        volumes=[(v.host_path, v.guest_path, v.readonly) for v in spec.volumes],
        network=boxlite.NetworkSpec(outbound=outbound),
        auto_remove=False,
        auto_delete=False,
        auto_resume=False,
        detach=True,
    )


def registry_reachable(url: str = REGISTRY_URL, timeout: float = REGISTRY_TIMEOUT) -> bool:
    """Whether the registry answers at all (blocking, at most about ``timeout`` s)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True  # 401: it answered and wants a token, as registries do
    except (OSError, ValueError, http.client.HTTPException):
        return False


def resolve(images: ImageStore, image: str, registry: bool) -> tuple[str, Path | None]:
    """The reference to run for ``image`` and its local layout (``None``: BoxLite pulls it).

    With a ``registry``, an alias is its catalog reference and any other registry
    reference is pulled; local images (``local/python``, ``debian``) always come
    from the store, and without a registry everything does.
    """
    if registry:
        if image in ALIASES:
            return ALIASES[image], None
        if local_recipe(image) is None:
            return image, None
    return images.resolve(image)
