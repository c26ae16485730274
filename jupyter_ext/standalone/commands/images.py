"""Images for client commands: ``images``, and building a missing one with a progress bar
(``image build``, and ``create`` of an alias the local server has not built yet)."""

from __future__ import annotations

import argparse
import asyncio
import re
from pathlib import Path
from typing import Any

from ...core.errors import BoxRunError
from ...images.aliases import ALIASES, local_recipe
from ...images.store import ImageInfo, ImageStore
from ...server import BoxRunServer
from . import output
from .api import Api

#: How the server says an image is not built (``images/store.py``).
_NOT_BUILT = re.compile(r"run `boxrun image build ([a-z0-9_-]+)`")


async def build(store: ImageStore, name: str) -> ImageInfo:
    """Build ``name`` into ``store`` with a progress bar."""
    with output.progress(100, f"building {name}", always=True) as bar:
        def progress(message: str, fraction: float | None) -> None:
            if fraction is not None:
                bar.n = round(fraction * 100)
            bar.set_description_str(f"{name}: {message}")
        image = await store.build(name, progress)
        bar.n = 100
        bar.refresh()
    return image


def build_missing(api: Api, err: BoxRunError) -> bool:
    """When ``err`` says the local server lacks an image, build it where a server on this
    state dir finds it (``$BOXRUN_IMAGES_DIR``, else ``<state dir>/images``); whether it did."""
    match = _NOT_BUILT.search(err.message) if err.code == "IMAGE_PULL_FAILED" else None
    if match is None or api.target.socket is None:
        return False
    store = ImageStore(Path(BoxRunServer(state_dir=api.target.state_dir).images_dir))
    output.note(f"image {match[1]} is not built yet: building it in {store.root} (once)")
    image = asyncio.run(build(store, match[1]))
    output.note(f"built {image.ref} ({image.size_bytes / 1e6:.0f} MB)")
    return True


def images(api: Api, args: argparse.Namespace) -> int:
    built = {i["name"]: i for i in api.call("GET", "/v1/images")}
    rows = []
    for alias, ref in ALIASES.items():
        recipe = local_recipe(alias)
        rows.append([alias, ref, built[recipe]["ref"] if recipe in built else "-"])
    output.table(["ALIAS", "IMAGE", "LOCAL"], rows)
    print()
    output.table(["NAME", "REF", "SIZE", "CREATED"],
                 [[i["name"], i["ref"], f"{i['size_bytes'] / 1e6:.0f}MB", i["created_at"]]
                  for i in built.values()], right=frozenset({2}))
    return 0


def add_parsers(sub: Any, client: Any) -> None:
    sub.add_parser("images", help="image aliases and the local images").set_defaults(
        run=client(images))
