"""The user namespace boxes run in: box root is a subordinate id of the server's user."""

from __future__ import annotations

import logging
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

#: Ids a box gets (0–65535), as in a container or VM.
RANGE = 65536


def subordinate_range(path: Path, user: str, uid: int) -> int | None:
    """First id of ``user``'s range of at least :data:`RANGE` ids in a subid file."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[0] in (user, str(uid)) and int(parts[2]) >= RANGE:
            return int(parts[1])
    return None


@dataclass(frozen=True)
class UserNs:
    """How to run a command as box root (``sandbox``) or as box owner (``admin``).

    With a subordinate range, box ids 0–65535 are host ids ``uid``… and ``gid``…; else
    (``uid is None``) box root is the server's own user and no other id exists.
    """

    uid: int | None
    gid: int | None

    @property
    def key(self) -> str:
        """Names the mapping, so files unpacked under another one are not reused."""
        return f"{self.uid}-{self.gid}" if self.uid is not None else f"self{os.geteuid()}"

    @property
    def limitations(self) -> list[str]:
        """What is weaker than it should be with this mapping."""
        if self.uid is not None:
            return []
        return ["no subordinate ids (/etc/subuid): box root is the server's own user and"
                " files in a box cannot belong to other users"]

    def _maps(self) -> list[str]:
        if self.uid is None:
            return ["--map-root-user"]
        return [f"--map-users={self.uid},0,{RANGE}", f"--map-groups={self.gid},0,{RANGE}",
                "--setuid=0", "--setgid=0"]

    def sandbox(self) -> list[str]:
        """Prefix: box root in a new user and private mount namespace."""
        return ["unshare", "--user", *self._maps(), "--mount", "--propagation=private", "--"]

    def admin(self) -> list[str]:
        """Prefix: root that owns both the box's ids and the server user's files.

        For unpacking images and creating or deleting box disks; never runs box code.
        """
        if self.uid is None:
            return ["unshare", "--user", "--map-root-user", "--"]
        owner = [f"--map-user={RANGE}", f"--map-group={RANGE}"]
        return ["unshare", "--user", *self._maps(), *owner, "--"]

    def tar_owner_flags(self) -> list[str]:
        """tar flags to keep (or, with one id, drop) the archive's owners."""
        if self.uid is None:
            return ["--no-same-owner"]
        return ["--same-owner", "--numeric-owner"]


def detect() -> UserNs:
    """The mapping for the user running the server, warning if it has no sub ids."""
    uid = os.geteuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    sub_uid = subordinate_range(Path("/etc/subuid"), user, uid)
    sub_gid = subordinate_range(Path("/etc/subgid"), user, uid)
    if sub_uid is None or sub_gid is None:
        log.warning("no %d-id range for %s in /etc/subuid and /etc/subgid: box root will be"
                    " %s itself (one id only)", RANGE, user, user)
        return UserNs(None, None)
    return UserNs(sub_uid, sub_gid)
