"""The images the store can build from Debian packages, and how mmdebstrap builds them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SUITE = "bookworm"

#: Run in the finished root filesystem: drop what mmdebstrap copied from the host.
SCRUB_HOOK = (
    'rm -f "$1/etc/resolv.conf" && echo localhost > "$1/etc/hostname"'
    ' && printf "127.0.0.1\\tlocalhost\\n::1\\tlocalhost\\n" > "$1/etc/hosts"'
)


@dataclass(frozen=True)
class Recipe:
    """One buildable image: a Debian minbase plus ``packages``."""

    name: str
    description: str
    packages: tuple[str, ...] = ()


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe("debian", "Debian bookworm minbase, built locally"),
        Recipe(
            "python",
            "Debian bookworm minbase with Python 3.11, pip, venv, IPython and ipykernel,"
            " built locally",
            ("python3", "python3-pip", "python3-venv", "ipython3", "python3-ipykernel"),
        ),
    )
}


def mmdebstrap_command(recipe: Recipe, target: Path, rootless: bool | None = None) -> list[str]:
    """The mmdebstrap call writing ``recipe``'s root filesystem as the tarball ``target``.

    ``--verbose`` makes apt and dpkg print the per-package lines progress is made of;
    ``/dev`` is left out of the tarball (sandboxes get their own).
    """
    if rootless is None:
        rootless = os.geteuid() != 0
    command = [
        "mmdebstrap",
        "--verbose",
        "--variant=minbase",
        f"--mode={'unshare' if rootless else 'root'}",
        "--format=tar",
        "--skip=output/dev",
        f"--customize-hook={SCRUB_HOOK}",
    ]
    if recipe.packages:
        command.append("--include=" + ",".join(recipe.packages))
    return [*command, SUITE, str(target)]
