"""Snapshots under attack: names that try to leave the snapshots folder, one box's
snapshot reached through another box, a box that fills its disk to blow the quota, and
sessions a fork does not carry named to attach to."""

from __future__ import annotations

import httpx
import pytest

from ..api.test_http import error
from ..api.test_sessions import start
from ..api.test_snapshots import make_box, outputs, remove_all, sh, snap
from ..servers import ServerProcess


@pytest.fixture
def http(new_server: ServerProcess):
    new_server.env["BOXRUN_MAX_SNAPSHOT_BYTES"] = str(64 << 20)
    with new_server.start().http() as client:
        yield client
        remove_all(client)


def test_names_refs_and_quota(new_server: ServerProcess, http: httpx.Client) -> None:
    snaps = new_server.state_dir / "snapshots"
    owner, other = make_box(http), make_box(http)
    for name in ("../../escape", "a/b", ".hidden", "", "x" * 64, 7, None):
        resp = http.post(f"/v1/boxes/{owner['id']}/snapshots", json={"name": name})
        error(resp, 422, "VALIDATION_ERROR")
    assert list(snaps.iterdir()) == []
    mine = snap(http, owner, "mine")
    # another box's URL does not reach it: not found, nothing restored or deleted
    for ref in (mine["id"], "mine"):
        error(http.get(f"/v1/boxes/{other['id']}/snapshots/{ref}"), 404, "SNAPSHOT_NOT_FOUND")
        error(http.post(f"/v1/boxes/{other['id']}/snapshots/{ref}:restore"), 404,
              "SNAPSHOT_NOT_FOUND")
        error(http.delete(f"/v1/boxes/{other['id']}/snapshots/{ref}"), 404,
              "SNAPSHOT_NOT_FOUND")
    for ref in ("%2e%2e", "snap_..%2F..%2Fboxrun.db", "..%2F..%2Fboxrun.db"):
        assert http.delete(f"/v1/boxes/{owner['id']}/snapshots/{ref}").status_code == 404
    assert (new_server.state_dir / "boxrun.db").is_file()
    assert [p.name for p in snaps.iterdir()] == [mine["id"]]
    # a box that fills its disk past the quota: refused, and nothing of it kept
    sh(http, owner, "head -c 100000000 /dev/urandom > /root/fill; sync")
    resp = http.post(f"/v1/boxes/{owner['id']}/snapshots", json={"name": "huge"})
    assert "max_snapshot_bytes" in error(resp, 422, "RESOURCE_EXCEEDED")
    assert [p.name for p in snaps.iterdir()] == [mine["id"]]
    assert [s["name"] for s in http.get(f"/v1/boxes/{owner['id']}/snapshots").json()] == [
        "mine"]


def test_attach_reaches_only_what_the_fork_carries(http: httpx.Client, server_backend: str
                                                   ) -> None:
    """A caller names sessions a fork does not carry (another box's live one, the fork's
    own, ids that try to leave the sessions folder): refused in the API's format, and the
    sessions named go on untouched."""
    source, stranger = (make_box(http, image="python", memory_mb=512) for _ in range(2))
    mine, _ = start(http, source, "ipykernel")
    theirs, _ = start(http, stranger, "ipykernel")
    assert outputs(theirs.execute("z = 'theirs'; print(z)")) == "theirs\n"
    fork = make_box(http, snapshot=snap(http, source, "s")["id"], image="python",
                    memory_mb=512)
    sessions = f"/v1/boxes/{fork['id']}/sessions"
    if server_backend != "gvisor":  # disk only: nothing is carried at all
        error(http.post(sessions, json={"attach": mine.id}), 422, "VALIDATION_ERROR")
        return
    own, _ = start(http, fork, "python")
    for sid in (theirs.id, own.id, f"../{mine.id}", f"{mine.id}/..", "..", "%2e%2e",
                mine.id + "\x00", f"{mine.id}' OR '1'='1"):
        error(http.post(sessions, json={"attach": sid}), 404, "SESSION_NOT_FOUND")
    # the other box's interpreter was not taken: it answers its own session
    assert outputs(theirs.execute("print(z)")) == "theirs\n"
    assert [s["id"] for s in http.get(sessions).json()] == [own.id]
