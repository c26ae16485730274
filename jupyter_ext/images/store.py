"""The image store: locally built images as OCI layouts, and their unpacked root filesystems."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..core.errors import BoxRunError
from .aliases import LOCAL_PREFIX, local_recipe
from .build import MMDEBSTRAP_SHARE, Progress, run_mmdebstrap
from .locks import file_lock
from .oci import write_layout
from .recipes import RECIPES

META = "image.json"


@dataclass(frozen=True)
class ImageInfo:
    """A built image."""

    name: str
    ref: str
    description: str
    packages: tuple[str, ...]
    size_bytes: int
    created_at: str
    digest: str
    oci_layout: Path
    recipe: str = ""  # the recipe's digest at build time ("": built before they had one)

    def to_json(self) -> dict[str, Any]:
        """The image as the API reports it."""
        data = asdict(self)
        data.update(packages=list(self.packages), oci_layout=str(self.oci_layout))
        return data


class ImageStore:
    """Images under ``root``: ``NAME/image.json`` and the layout ``NAME/oci``.

    An image exists once its directory is renamed into place, so a crashed build
    leaves only a ``.build-*`` directory that is ignored and cleaned up later.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def recipes(self) -> list[str]:
        """Names of the images the store can build."""
        return sorted(RECIPES)

    def get(self, name: str) -> ImageInfo | None:
        """The built image ``name``, if any."""
        if name.startswith(".") or "/" in name:
            return None
        meta = self.root / name / META
        if not meta.is_file():
            return None
        data = json.loads(meta.read_text())
        data["packages"] = tuple(data["packages"])
        return ImageInfo(**data, oci_layout=self.root / name / "oci")

    def current(self, name: str) -> bool:
        """Whether ``name`` is built from its recipe as it is now."""
        info = self.get(name)
        return info is not None and name in RECIPES and info.recipe == RECIPES[name].digest

    def list(self) -> list[ImageInfo]:
        """Every built image, by name."""
        if not self.root.is_dir():
            return []
        infos = (self.get(path.name) for path in sorted(self.root.iterdir()))
        return [info for info in infos if info is not None]

    def resolve(self, image: str) -> tuple[str, Path]:
        """The reference and layout of the local image standing in for ``image``.

        No registry is reachable, so anything else is IMAGE_PULL_FAILED.
        """
        recipe = local_recipe(image)
        if recipe in RECIPES:
            info = self.get(recipe)
            if info is None:
                raise BoxRunError(
                    "IMAGE_PULL_FAILED",
                    f"image {recipe!r} is not built yet: run `boxrun image build {recipe}`"
                    " (about a minute) or build it from the images panel",
                )
            return info.ref, info.oci_layout
        built = ", ".join(info.name for info in self.list()) or "none"
        raise BoxRunError(
            "IMAGE_PULL_FAILED",
            f"cannot pull {image!r}: no container registry is reachable from this server."
            f" Local images: built: {built}; buildable: {', '.join(self.recipes())}",
        )

    async def build(self, name: str, progress: Progress = lambda message, fraction: None
                    ) -> ImageInfo:
        """Build (or rebuild) the image ``name``; waits for a build already running."""
        recipe = RECIPES.get(name)
        if recipe is None:
            raise BoxRunError("IMAGE_NOT_FOUND", f"no recipe for image {name!r}; "
                              f"known: {', '.join(self.recipes())}")
        requested = time.time()
        self.root.mkdir(parents=True, exist_ok=True)
        async with file_lock(self.root / ".locks" / f"{name}.lock"):
            meta = self.root / name / META
            if meta.is_file() and meta.stat().st_mtime >= requested:
                return self.get(name)  # type: ignore[return-value]
            for stale in self.root.glob(f".build-{name}-*"):
                shutil.rmtree(stale, ignore_errors=True)
            work = Path(tempfile.mkdtemp(prefix=f".build-{name}-", dir=self.root))
            try:
                progress(f"building {name}", 0.0)
                await run_mmdebstrap(recipe, work / "rootfs.tar", progress)
                info = await asyncio.to_thread(self._package, recipe.name, work, progress)
                self._replace(name, work)
            finally:
                shutil.rmtree(work, ignore_errors=True)
        progress("done", 1.0)
        return self.get(name) or info

    def _package(self, name: str, work: Path, progress: Progress) -> ImageInfo:
        """Turn ``work/rootfs.tar`` into the layout and metadata of a built image."""
        recipe = RECIPES[name]
        created = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
        share = 1 - MMDEBSTRAP_SHARE

        def compressing(done: float) -> None:
            progress("compressing the layer", MMDEBSTRAP_SHARE + share * 0.95 * done)

        layout = write_layout(work / "rootfs.tar", work / "oci", LOCAL_PREFIX + name,
                              created, compressing)
        (work / "rootfs.tar").unlink()
        info = ImageInfo(name, LOCAL_PREFIX + name, recipe.description,
                         recipe.packages + recipe.pip,
                         layout.size_bytes, created, layout.manifest_digest, work / "oci",
                         recipe.digest)
        data = info.to_json()
        del data["oci_layout"]
        (work / META).write_text(json.dumps(data, indent=2))
        return info

    def _replace(self, name: str, work: Path) -> None:
        """Move the finished build into place, dropping any previous one."""
        target = self.root / name
        if not target.exists():
            work.rename(target)
            return
        old = Path(tempfile.mkdtemp(prefix=f".build-{name}-", dir=self.root))
        target.rename(old / "old")
        work.rename(target)
        shutil.rmtree(old)

    async def remove(self, name: str) -> None:
        """Delete the image ``name`` (backends drop their unpacked copies on start)."""
        if self.get(name) is None:
            raise BoxRunError("IMAGE_NOT_FOUND", f"image {name!r} is not built")
        async with file_lock(self.root / ".locks" / f"{name}.lock"):
            shutil.rmtree(self.root / name)
