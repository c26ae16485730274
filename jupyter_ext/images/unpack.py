"""Unpacked root filesystems of images, owned by box root through a user namespace."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..core.hostcmd import run_checked
from .locks import file_lock
from .oci import Layout
from .userns import UserNs

#: Make the target, unpack the layer into it, and give it to box root.
UNPACK_SCRIPT = 'mkdir -- "$1" && chown 0:0 "$1" && chmod 755 "$1" && shift && exec tar "$@"'


def unpack_command(layer: Path, target: Path, userns: UserNs) -> list[str]:
    """Unpack ``layer`` as the admin of ``userns``, so the kernel shifts the owners."""
    tar = ["-x", "-z", "-p", *userns.tar_owner_flags(), "-f", str(layer), "-C", str(target)]
    return [*userns.admin(), "/bin/sh", "-c", UNPACK_SCRIPT, "sh", str(target), *tar]


@dataclass(frozen=True)
class Addition:
    """A change a backend makes to each tree once unpacked (``apply``, run as the server
    on trees it owns), named by ``tag`` in the trees' folder names: a new one unpacks anew."""

    tag: str
    apply: Callable[[Path], None]


class RootfsCache:
    """``<root>/<digest>-<mapping>[-<tag>]/`` directories, each with a ``.json`` record.

    The record is written last and names the command prefix that can delete the
    directory (its files belong to box ids the server's user may not own).
    """

    def __init__(self, root: Path, locks: Path, addition: Addition | None = None) -> None:
        self.root = root
        self.locks = locks
        self.addition = addition

    async def get(self, layout: Layout, userns: UserNs) -> Path:
        """The unpacked ``layout`` for ``userns`` (with the addition), unpacking it the
        first time."""
        name = f"{layout.manifest_digest.split(':')[-1][:16]}-{userns.key}"
        if self.addition is not None:
            name += f"-{self.addition.tag}"
        target, record = self.root / name, self.root / f"{name}.json"
        if record.is_file():
            return target
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o711)
        async with file_lock(self.locks / f"rootfs-{name}.lock"):
            if record.is_file():
                return target
            if target.exists():  # left by an interrupted unpack
                await run_checked([*userns.admin(), "rm", "-rf", str(target)], "cleaning up")
            await run_checked(unpack_command(layout.layer, target, userns), "unpacking image")
            if self.addition is not None:
                self.addition.apply(target)
            data = {"digest": layout.manifest_digest, "remove_prefix": userns.admin()}
            record.write_text(json.dumps(data))
        return target

    async def prune(self, keep: set[str]) -> None:
        """Delete root filesystems of images whose digest is not in ``keep``.

        Boxes running on a deleted one lose their base files: rebuild or remove
        images only while the boxes made from them are stopped.
        """
        for record in sorted(self.root.glob("*.json")) if self.root.is_dir() else []:
            data = json.loads(record.read_text())
            if data["digest"] in keep:
                continue
            target = record.with_suffix("")
            await run_checked([*data["remove_prefix"], "rm", "-rf", str(target)], "deleting")
            record.unlink()
