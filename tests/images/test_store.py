"""The image store: builds, OCI layouts, resolution and unpacked root filesystems."""

from __future__ import annotations

import asyncio
import functools
import gzip
import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from jupyter_ext.core.errors import BoxRunError
from jupyter_ext.images import ImageStore
from jupyter_ext.images.build import ProgressParser
from jupyter_ext.images.oci import read_layout
from jupyter_ext.images.recipes import RECIPES
from jupyter_ext.images.unpack import RootfsCache
from jupyter_ext.images.userns import detect


def assert_progress(updates: list[tuple[str, float | None]]) -> None:
    fractions = [fraction for _, fraction in updates if fraction is not None]
    assert fractions == sorted(fractions)
    assert fractions[0] <= 0.05 and fractions[-1] == 1.0
    assert len(set(fractions)) > 20  # moves as packages come, not just per stage
    assert {"downloading essential packages", "compressing the layer"} <= {m for m, _ in updates}


async def test_build_is_locked_atomic_and_removable(tmp_path: Path):
    store = ImageStore(tmp_path / "images")
    updates: list[tuple[str, float | None]] = []
    first = asyncio.create_task(store.build("debian", lambda m, f: updates.append((m, f))))
    while not updates:
        await asyncio.sleep(0.05)
    second = await store.build("debian")  # waits for the first instead of racing it
    assert (await first) == second
    assert_progress(updates)
    assert [info.name for info in store.list()] == ["debian"]
    assert not list((tmp_path / "images").glob(".build-*"))

    userns = detect()
    cache = RootfsCache(tmp_path / "rootfs", tmp_path / "locks")
    rootfs = await cache.get(read_layout(second.oci_layout), userns)
    assert (rootfs / "etc" / "debian_version").is_file()
    if userns.uid is not None:
        assert (rootfs / "etc").stat().st_uid == userns.uid
    await store.remove("debian")
    assert store.get("debian") is None
    await cache.prune({i.digest for i in store.list()})
    assert not rootfs.exists()
    with pytest.raises(BoxRunError) as error:
        await store.remove("debian")
    assert error.value.code == "IMAGE_NOT_FOUND"


async def test_cancelled_build_leaves_nothing_built(tmp_path: Path):
    store = ImageStore(tmp_path)
    started = asyncio.Event()
    build = asyncio.create_task(store.build("debian", lambda m, f: started.set()))
    await started.wait()
    await asyncio.sleep(1)
    build.cancel()
    with pytest.raises(asyncio.CancelledError):
        await build
    assert store.get("debian") is None and store.list() == []
    assert not list(tmp_path.glob(".build-*"))


def blob_path(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.split(":")[1]


def test_oci_layout_is_valid(built_images):
    for info in built_images.store.list():
        layout = info.oci_layout
        assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
        index = json.loads((layout / "index.json").read_text())
        [descriptor] = index["manifests"]
        assert descriptor["annotations"]["org.opencontainers.image.ref.name"] == info.ref
        blob = functools.partial(blob_path, layout)
        manifest_bytes = blob(descriptor["digest"]).read_bytes()
        assert "sha256:" + hashlib.sha256(manifest_bytes).hexdigest() == descriptor["digest"]
        manifest = json.loads(manifest_bytes)
        config = json.loads(blob(manifest["config"]["digest"]).read_text())
        [layer] = manifest["layers"]
        assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
        assert layer["size"] == blob(layer["digest"]).stat().st_size
        diff = hashlib.sha256()
        with gzip.open(blob(layer["digest"])) as tar:
            while chunk := tar.read(1 << 20):
                diff.update(chunk)
        assert config["rootfs"] == {"type": "layers", "diff_ids": ["sha256:" + diff.hexdigest()]}


def test_resolve_and_json(built_images, tmp_path: Path):
    store = built_images.store
    ref, layout = store.resolve("python")
    assert ref == "local/python" and store.resolve("local/python") == (ref, layout)
    assert store.resolve("ubuntu")[0] == "local/debian"
    info = store.get("python")
    assert info is not None and "ipykernel>=6.29" in info.packages
    assert info.recipe == RECIPES["python"].digest != RECIPES["debian"].digest
    assert store.current("python") and not ImageStore(tmp_path).current("python")
    assert {"name", "ref", "description", "size_bytes", "created_at", "oci_layout"} <= set(
        info.to_json())
    with pytest.raises(BoxRunError, match="no container registry") as error:
        store.resolve("node:22-slim")
    assert error.value.code == "IMAGE_PULL_FAILED" and "python" in error.value.message
    with pytest.raises(BoxRunError, match="boxrun image build python") as error:
        ImageStore(tmp_path).resolve("python")
    assert error.value.code == "IMAGE_PULL_FAILED"


def test_progress_parser_counts_packages():
    parser = ProgressParser()
    lines = ["I: downloading packages with apt...", "0 upgraded, 2 newly installed, 0 to remove",
             "Get:1 http://x a", "Get:2 http://x b", "I: extracting archives...", "noise"]
    updates = [update for line in lines if (update := parser.feed(line))]
    assert [fraction for _, fraction in updates] == [0.05, 0.175, 0.3, 0.3]


def test_pip_packages_are_compiled_for_any_mtime(built_images):
    """The python image's pip-installed modules carry hash-checked ``.pyc`` files, which stay
    valid although the layer's tarball changes the sources' mtimes: boxes never recompile."""
    info = built_images.store.get("python")
    assert info is not None
    with tarfile.open(read_layout(info.oci_layout).layer) as tar:
        pyc = next(m for m in tar
                   if m.name.endswith("/ipykernel/__pycache__/kernelapp.cpython-311.pyc"))
        header = tar.extractfile(pyc).read(16)  # type: ignore[union-attr]
    flags = int.from_bytes(header[4:8], "little")
    assert flags == 0b11, "pip's .pyc files should be checked-hash based (PEP 552)"
