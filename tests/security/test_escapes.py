"""A hostile box against a real server: no way out to host root, host processes or the
host's network, and a kernel surface cut to a container's (issue: escapes).

Every test attacks for real from inside a box and fails if the attack works.
"""

from __future__ import annotations

import platform
import secrets
import subprocess
import threading
from pathlib import Path

import pytest

from .conftest import Boxes, host_pids_of

#: Host tools the server might run; a hostile PATH offers a fake of each.
HOST_TOOLS = ("nsenter", "prlimit", "unshare", "bwrap", "sh", "mount", "umount", "ip", "rm",
              "cat", "tar", "mkfs.ext4", "slirp4netns", "python3", "env", "setsid", "mkdir")
EVIL_SO = r"""
#include <fcntl.h>
#include <unistd.h>
__attribute__((constructor)) static void pwn(void) {
    int fd = open(MARKER, O_WRONLY | O_CREAT, 0644);
    if (fd >= 0) close(fd);
}
"""


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """A host path that exists only if a host process ran the box's code."""
    path = Path(f"/tmp/boxrun-pwned-{secrets.token_hex(6)}")
    yield path
    path.unlink(missing_ok=True)


@pytest.fixture
def evil_so(tmp_path: Path, marker: Path) -> bytes:
    source = tmp_path / "evil.c"
    source.write_text(EVIL_SO)
    out = tmp_path / "evil.so"
    subprocess.run(["gcc", "-shared", "-fPIC", f'-DMARKER="{marker}"', "-o", str(out),
                    str(source)], check=True)
    return out.read_bytes()


def plant(boxes: Boxes, box: dict, evil_so: bytes, marker: Path) -> dict[str, str]:
    """Put fake host tools and a preload library in the box's /tmp/evil; the env that
    points a host process at them through the box's root as the host sees it."""
    inside = "/root/evil" if boxes.backend == "gvisor" else "/tmp/evil"  # gVisor: /tmp is tmpfs
    boxes.upload(box, f"{inside}/evil.so", evil_so)
    for name in HOST_TOOLS:
        boxes.upload(box, f"{inside}/{name}", f"#!/bin/sh\ntouch {marker}\n".encode())
    assert boxes.run(box, "sh", "-c", f"chmod 755 {inside}/*")[0] == 0
    if boxes.backend == "gvisor":  # box processes live in the Sentry: the box's root as its
        # gofer (which serves the box's files from the host) sees it
        gofer = next(pid for pid in host_pids_of(box["boxlite_id"])
                     if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"runsc-gofer"))
        evil = f"/proc/{gofer}/root/root/evil"
    else:
        anchor = f"boxrun-anchor-{secrets.token_hex(6)}"
        boxes.start(box, "sh", "-c", "sleep 600", anchor)
        for _ in range(100):
            if pids := host_pids_of(anchor):
                break
            threading.Event().wait(0.05)
        evil = f"/proc/{pids[0]}/root/tmp/evil"
    assert Path(evil, "evil.so").exists()  # the attack's path is real on the host
    return {"PATH": f"{evil}:/usr/sbin:/usr/bin:/sbin:/bin", "LD_PRELOAD": f"{evil}/evil.so",
            "LD_LIBRARY_PATH": evil, "BASH_ENV": f"{evil}/sh", "ENV": f"{evil}/sh",
            "PYTHONPATH": evil, "PYTHONSTARTUP": f"{evil}/python3"}


def test_caller_env_never_reaches_a_host_process(boxes: Boxes, hostile_http, evil_so, marker):
    box = boxes.create("python")
    env = plant(boxes, box, evil_so, marker)
    # an exec's env
    assert boxes.run(box, "true", env=env)[0] is not None
    boxes.upload(box, "/root/after", b"x")
    # a session's env
    resp = hostile_http.post(f"/v1/boxes/{box['id']}/sessions", json={"env": env}, timeout=120)
    assert resp.status_code == 201, resp.text
    # a throwaway box's env
    resp = hostile_http.post("/v1/run", json={"image": "debian", "cmd": ["true"], "env": env,
                                      "cpu": 1, "memory_mb": 256, "disk_size_gb": 1})
    assert resp.status_code == 200, resp.text
    # a box's env (every exec, upload and session of it)
    second = boxes.create("python", env=env)
    assert boxes.run(second, "true")[0] is not None
    boxes.upload(second, "/root/f", b"x")
    assert hostile_http.post(f"/v1/boxes/{second['id']}/files/download",
                     json={"path": "/root/f"}).status_code == 200
    for made in (box, second):
        assert hostile_http.post(f"/v1/boxes/{made['id']}:stop").status_code == 200
        assert hostile_http.post(f"/v1/boxes/{made['id']}:start").status_code == 200
    assert not marker.exists(), "a host process ran code the box planted"


def test_no_host_credentials_inside_the_box(boxes: Boxes, hostile_http, hostile_binary):
    """A /proc scanner with ptrace in the box while the server starts execs, uploads,
    sessions and terminals in it: it must never see a process with host credentials."""
    box = boxes.create("python")
    hostile = boxes.install(box, hostile_binary)
    scan = boxes.start(box, hostile, "scan", "/root/stop-scan")
    for index in range(100):
        assert boxes.run(box, "true")[0] == 0
        if index % 4 == 0:
            boxes.upload(box, f"/root/upload-{index}", b"data")
    for _ in range(4):
        resp = hostile_http.post(f"/v1/boxes/{box['id']}/sessions", json={}, timeout=120)
        assert resp.status_code == 201, resp.text
        session = resp.json()["id"]
        assert hostile_http.post(f"/v1/boxes/{box['id']}/sessions/{session}:interrupt").status_code == 200
        assert hostile_http.delete(f"/v1/boxes/{box['id']}/sessions/{session}").status_code == 200
    boxes.upload(box, "/root/stop-scan", b"")
    code, out, err = boxes.finish(box, scan)
    assert code == 0, err
    assert out.splitlines()[-1] == "seen 0 seized 0", out


def test_kernel_surface_is_a_containers(boxes: Boxes, hostile_binary):
    box = boxes.create()
    hostile = boxes.install(box, hostile_binary)
    code, out, err = boxes.run(box, hostile, "syscalls")
    assert code == 0, err
    results = dict(line.split() for line in out.splitlines())
    assert set(results) >= {"unshare_user", "clone_newuser", "io_uring_setup", "add_key",
                            "keyctl", "mount", "userfaultfd", "bpf", "perf_event_open",
                            "setns", "socket_raw", "socket_packet", "unshare_x32"}
    worked = [name for name, err in results.items() if err == "0"]
    if boxes.backend == "gvisor":
        # the Sentry implements these itself (a user namespace, io_uring, raw sockets on
        # its loopback-only network stack): none reaches the host kernel
        assert set(worked) <= SENTRY_ONLY, f"allowed in the box: {worked}"
        return
    assert not worked, f"allowed in the box: {worked}"
    # nested user namespaces through the tool, too
    code, _, _ = boxes.run(box, "unshare", "-Ur", "true")
    assert code != 0


#: Calls a gVisor box may make, served by the Sentry (never passed to the host kernel).
SENTRY_ONLY = {"unshare_user", "clone_newuser", "io_uring_setup", "socket_raw", "socket_packet"}
#: Docker's default capabilities; a box keeps at most these.
DOCKER_DEFAULT = {0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31}
#: CAP_DAC_READ_SEARCH, NET_ADMIN, NET_RAW, SYS_MODULE, SYS_RAWIO, SYS_PTRACE,
#: SYS_ADMIN, SYS_TIME, PERFMON, BPF.
DANGEROUS = {2, 12, 13, 16, 17, 19, 21, 25, 38, 39}


def test_box_root_has_a_containers_privileges(boxes: Boxes):
    box = boxes.create()
    code, out, _ = boxes.run(box, "cat", "/proc/self/status")
    assert code == 0
    status = dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line)
    bits = {name: {b for b in range(64) if int(status.get(name, "0"), 16) >> b & 1}
            for name in ("CapEff", "CapBnd", "CapAmb", "CapPrm")}
    assert bits["CapBnd"] <= DOCKER_DEFAULT and not bits["CapBnd"] & DANGEROUS
    assert bits["CapEff"] <= bits["CapBnd"] and not bits["CapAmb"]
    if boxes.backend == "gvisor":
        # the box's system calls reach the Sentry, not the host (its /proc shows neither
        # field); gVisor's own host processes (the Sentry, as nobody, and the gofer) run
        # with no_new_privs under its seccomp filters
        host = {}
        for pid in host_pids_of(box["boxlite_id"]):
            argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
            if argv0 in ("runsc-sandbox", "runsc-gofer"):
                text = Path(f"/proc/{pid}/status").read_text()
                host[argv0] = dict(line.split(":\t", 1) for line in text.splitlines()
                                   if ":\t" in line)
        assert set(host) == {"runsc-sandbox", "runsc-gofer"}
        for fields in host.values():
            assert fields["Seccomp"].strip() == "2" and fields["NoNewPrivs"].strip() == "1"
        assert host["runsc-sandbox"]["Uid"].split()[0] != "0"  # the Sentry is not host root
    else:
        assert status["NoNewPrivs"].strip() == "1"
        assert status["Seccomp"].strip() == "2"


def test_each_box_has_host_ids_of_its_own(boxes: Boxes, hostile_http):
    boxes.skip_on("gvisor", "box root is root only in the Sentry, which runs as nobody on the"
                  " host (test_box_root_has_a_containers_privileges checks it)")
    info = hostile_http.get("/v1/info").json()
    if not info.get("box_uid_ranges"):
        pytest.skip(f"boxes share one uid range here: {info['limitations']}")
    maps = []
    for _ in range(2):
        box = boxes.create()
        code, out, _ = boxes.run(box, "cat", "/proc/self/uid_map")
        inside, outside, count = (int(v) for v in out.split())
        assert code == 0 and inside == 0 and count == 65536
        maps.append(range(outside, outside + count))
    first, second = maps
    assert not set(first) & {second.start, second.stop - 1} and first.start != second.start
    assert 0 not in first and 0 not in second


def test_gvisor_box_talks_to_the_sentry_not_the_host_kernel(boxes: Boxes):
    boxes.skip_unless("gvisor", "only gVisor puts a user-space kernel under the box")
    box = boxes.create()
    code, release, _ = boxes.run(box, "uname", "-r")
    assert code == 0 and release.strip() and release.strip() != platform.release()
    _, version, _ = boxes.run(box, "cat", "/proc/version")
    assert version.strip() != Path("/proc/version").read_text().strip()
    assert platform.release() not in version
    code, dmesg, _ = boxes.run(box, "dmesg")
    assert code == 0 and "Starting gVisor" in dmesg
