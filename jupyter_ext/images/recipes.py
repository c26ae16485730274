"""The images the store can build from Debian packages, and how mmdebstrap builds them."""

from __future__ import annotations

import hashlib
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

SUITE = "bookworm"

#: Run in the finished root filesystem: drop what mmdebstrap copied from the host.
SCRUB_HOOK = (
    'rm -f "$1/etc/resolv.conf" "$1/tmp/host-ca.crt" && echo localhost > "$1/etc/hostname"'
    ' && printf "127.0.0.1\\tlocalhost\\n::1\\tlocalhost\\n" > "$1/etc/hosts"'
)

#: Install PyPI packages into the image's system Python, trusting the host's CAs (a
#: TLS-inspecting proxy the host trusts must work for the build too); requirements follow.
PIP_HOOK = (
    'cp -L /etc/ssl/certs/ca-certificates.crt "$1/tmp/host-ca.crt"'
    ' && chroot "$1" env PIP_CERT=/tmp/host-ca.crt REQUESTS_CA_BUNDLE=/tmp/host-ca.crt'
    " SSL_CERT_FILE=/tmp/host-ca.crt PIP_FIND_LINKS= python3 -m pip install --no-compile"
    " --no-cache-dir --break-system-packages --root-user-action=ignore"
)

#: Byte-compile what pip installed, validated by the sources' hashes: the image's tarball
#: clamps new files' mtimes, so timestamp-checked ``.pyc`` files would all be stale and
#: every new box would compile them again (about 0.4 s more for its first ``ipykernel``).
COMPILE_HOOK = 'chroot "$1" python3 -m compileall -q -j0 --invalidation-mode checked-hash /usr/local/lib'


@dataclass(frozen=True)
class Recipe:
    """One buildable image: a Debian minbase plus ``packages``, then ``pip`` requirements
    installed from PyPI into the system Python (newer than Debian's)."""

    name: str
    description: str
    packages: tuple[str, ...] = ()
    pip: tuple[str, ...] = ()

    @property
    def digest(self) -> str:
        """What the image is built from: changes when the recipe or how it is built does."""
        command = mmdebstrap_command(self, Path("-"), rootless=False)
        return hashlib.sha256("\0".join(command).encode()).hexdigest()[:16]


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe("debian", "Debian bookworm minbase, built locally"),
        Recipe(
            "python",
            "Debian bookworm minbase with Python 3.11, pip, venv, and from PyPI IPython,"
            " ipykernel, ipywidgets 8 and matplotlib, built locally",
            ("python3", "python3-pip", "python3-venv"),
            # Debian's ipykernel 6.17 and ipywidgets 6 predate the ``comm`` package that
            # JupyterLab 4's widget manager needs.
            ("ipykernel>=6.29", "ipywidgets>=8,<9", "ipython", "matplotlib"),
        ),
    )
}


def mmdebstrap_command(recipe: Recipe, target: Path, rootless: bool | None = None) -> list[str]:
    """The mmdebstrap call writing ``recipe``'s root filesystem as the tarball ``target``.

    ``--verbose`` makes apt and dpkg print the per-package lines progress is made of;
    ``/dev`` is left out of the tarball (sandboxes get their own). The pip step runs
    before the scrub, while the build's ``resolv.conf`` is still there.
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
    ]
    if recipe.packages:
        command.append("--include=" + ",".join(recipe.packages))
    if recipe.pip:
        requirements = " ".join(shlex.quote(r) for r in recipe.pip)
        command.append(f"--customize-hook={PIP_HOOK} {requirements} && {COMPILE_HOOK}")
    command.append(f"--customize-hook={SCRUB_HOOK}")
    return [*command, SUITE, str(target)]
