"""The user namespaces boxes run in: box ids are subordinate ids of the server's user.

The server user's subordinate range (``/etc/subuid``, ``/etc/subgid``) is cut into
slots of :data:`RANGE` ids. Slot 0 owns the unpacked images; where the server may make
idmapped mounts (root), each box gets a slot of its own, so per-uid kernel limits and
file ownership never cross boxes, and sees the images' files through an idmapped mount.
"""

from __future__ import annotations

import logging
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from ..core.hostcmd import tool

log = logging.getLogger(__name__)

#: Ids a box gets (0–65535), as in a container or VM.
RANGE = 65536


def subordinate_range(path: Path, user: str, uid: int) -> tuple[int, int] | None:
    """First id and size of ``user``'s largest range of at least :data:`RANGE` ids."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    ranges = []
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[0] in (user, str(uid)) and int(parts[2]) >= RANGE:
            ranges.append((int(parts[1]), int(parts[2])))
    return max(ranges, key=lambda r: r[1], default=None)


@dataclass(frozen=True)
class UserNs:
    """How to run a command as box root (``sandbox``) or as box owner (``admin``).

    With a subordinate range, slot ``n``'s ids 0–65535 are host ids ``uid + n*RANGE``…
    (likewise gids); else (``uid is None``) box root is the server's own user and no
    other id exists.
    """

    uid: int | None
    gid: int | None
    count: int = RANGE

    @property
    def key(self) -> str:
        """Names slot 0's mapping, so files unpacked under another one are not reused."""
        return f"{self.uid}-{self.gid}" if self.uid is not None else f"self{os.geteuid()}"

    @property
    def slots(self) -> int:
        """How many boxes can have ids of their own: 0 when they all share slot 0.

        Needs slots besides the images' and idmapped mounts, which only root may make.
        """
        if self.uid is None or os.geteuid() != 0:
            return 0
        return self.count // RANGE - 1

    @property
    def limitations(self) -> list[str]:
        """What is weaker than it should be with this mapping."""
        if self.uid is None:
            return ["no subordinate ids (/etc/subuid): box root is the server's own user and"
                    " files in a box cannot belong to other users"]
        if self.slots == 0:
            why = ("the server is not root (idmapped mounts need it)" if os.geteuid() != 0
                   else f"the subordinate range has {self.count} ids, one box's worth")
            return [f"every box has the same host uid range: {why}; per-uid kernel limits"
                    " (keys, inotify, processes) are shared between boxes"]
        return []

    def host_uid(self, slot: int) -> int | None:
        """Host uid of box root in ``slot``."""
        return None if self.uid is None else self.uid + slot * RANGE

    def host_gid(self, slot: int) -> int | None:
        """Host gid of box root in ``slot``."""
        return None if self.gid is None else self.gid + slot * RANGE

    def _maps(self, slot: int) -> list[str]:
        if self.uid is None:
            return ["--map-root-user"]
        return [f"--map-users={self.host_uid(slot)},0,{RANGE}",
                f"--map-groups={self.host_gid(slot)},0,{RANGE}", "--setuid=0", "--setgid=0"]

    def sandbox(self, slot: int = 0) -> list[str]:
        """Prefix: box root of ``slot`` in new user, mount and network namespaces."""
        return [tool("unshare"), "--user", *self._maps(slot), "--mount", "--net",
                "--propagation=private", "--"]

    def admin(self, slot: int = 0) -> list[str]:
        """Prefix: root that owns both ``slot``'s ids and the server user's files.

        For unpacking images and creating or deleting box disks; never runs box code.
        """
        if self.uid is None:
            return [tool("unshare"), "--user", "--map-root-user", "--"]
        owner = [f"--map-user={RANGE}", f"--map-group={RANGE}"]
        return [tool("unshare"), "--user", *self._maps(slot), *owner, "--"]

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
    return UserNs(sub_uid[0], sub_gid[0], min(sub_uid[1], sub_gid[1]))
