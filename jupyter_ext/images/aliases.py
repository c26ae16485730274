"""Image aliases of the original BoxRun catalog and their local equivalents."""

from __future__ import annotations

#: The original catalog: alias → registry reference.
ALIASES: dict[str, str] = {
    "default": "ubuntu:24.04",
    "ubuntu": "ubuntu:24.04",
    "python": "python:3.12-slim",
    "node": "node:22-slim",
    "golang": "golang:1.22",
    "rust": "rust:1.77-slim",
    "alpine": "alpine:3.20",
}

#: Alias → the recipe of the image store that stands in for it without a registry.
LOCAL_EQUIVALENTS: dict[str, str] = {
    "default": "debian",
    "ubuntu": "debian",
    "python": "python",
}

#: Prefix of the references of locally built images (``local/python``).
LOCAL_PREFIX = "local/"


def local_recipe(image: str) -> str | None:
    """The image-store recipe a requested image maps to without a registry, if any.

    ``python`` (an alias), ``local/python`` and a bare recipe name all map to the
    ``python`` recipe; registry references (``ubuntu:24.04``) map to nothing.
    """
    if image.startswith(LOCAL_PREFIX):
        return image[len(LOCAL_PREFIX):]
    if image in LOCAL_EQUIVALENTS:
        return LOCAL_EQUIVALENTS[image]
    if ":" not in image and "/" not in image:
        return image
    return None
