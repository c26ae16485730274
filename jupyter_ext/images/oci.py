"""Writing and reading single-layer OCI image layouts (the format BoxLite takes)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

LAYOUT_VERSION = {"imageLayoutVersion": "1.0.0"}
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_ANNOTATION = "org.opencontainers.image.ref.name"
CHUNK = 1 << 20
ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64"}


@dataclass(frozen=True)
class Layout:
    """What :func:`read_layout` finds in a layout directory."""

    manifest_digest: str
    manifest: dict
    config: dict
    layer: Path

    @property
    def size_bytes(self) -> int:
        """Bytes of the blobs the image is made of."""
        blobs = [self.manifest["config"], *self.manifest["layers"]]
        return sum(blob["size"] for blob in blobs)


def _blob_path(layout: Path, digest: str) -> Path:
    algorithm, _, hexdigest = digest.partition(":")
    return layout / "blobs" / algorithm / hexdigest


def _write_json_blob(layout: Path, media_type: str, content: dict) -> dict:
    data = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    _blob_path(layout, digest).write_bytes(data)
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def _write_layer(
    tar_path: Path, layout: Path, progress: Callable[[float], None]
) -> tuple[dict, str]:
    """Gzip ``tar_path`` into a blob; its descriptor and the tar's own digest."""
    total = max(tar_path.stat().st_size, 1)
    tmp = layout / "blobs" / "sha256" / "layer.tmp"
    diff = hashlib.sha256()
    with tar_path.open("rb") as src, tmp.open("wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz:
            while chunk := src.read(CHUNK):
                diff.update(chunk)
                gz.write(chunk)
                progress(src.tell() / total)
    blob = hashlib.sha256()
    with tmp.open("rb") as f:
        while chunk := f.read(CHUNK):
            blob.update(chunk)
    digest = "sha256:" + blob.hexdigest()
    descriptor = {"mediaType": MEDIA_LAYER, "digest": digest, "size": tmp.stat().st_size}
    os.replace(tmp, _blob_path(layout, digest))
    return descriptor, "sha256:" + diff.hexdigest()


def write_layout(
    tar_path: Path,
    layout: Path,
    ref_name: str,
    created: str,
    progress: Callable[[float], None] = lambda fraction: None,
) -> Layout:
    """Make ``layout`` an OCI image layout whose one layer is the rootfs ``tar_path``.

    ``progress`` gets the fraction of the tar compressed so far.
    """
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text(json.dumps(LAYOUT_VERSION))
    layer, diff_id = _write_layer(tar_path, layout, progress)
    config = {
        "created": created,
        "architecture": ARCHITECTURES.get(os.uname().machine, os.uname().machine),
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["/bin/bash"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created, "created_by": "mmdebstrap (boxrun image build)"}],
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": _write_json_blob(layout, MEDIA_CONFIG, config),
        "layers": [layer],
    }
    descriptor = _write_json_blob(layout, MEDIA_MANIFEST, manifest)
    descriptor["annotations"] = {REF_ANNOTATION: ref_name}
    index = {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [descriptor]}
    (layout / "index.json").write_text(json.dumps(index, indent=2))
    return read_layout(layout)


def read_layout(layout: Path) -> Layout:
    """Parse the layout's index, manifest and config; ``ValueError`` if malformed."""
    try:
        index = json.loads((layout / "index.json").read_text())
        digest = index["manifests"][0]["digest"]
        manifest = json.loads(_blob_path(layout, digest).read_text())
        config = json.loads(_blob_path(layout, manifest["config"]["digest"]).read_text())
        layer = _blob_path(layout, manifest["layers"][0]["digest"])
    except (OSError, KeyError, IndexError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a valid OCI image layout: {layout}: {exc}") from exc
    return Layout(digest, manifest, config, layer)
