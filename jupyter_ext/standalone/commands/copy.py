"""``cp SRC DST``: files and (as tar) folders between the host and a box (``BOX:PATH``)."""

from __future__ import annotations

import argparse
import json
import posixpath
import secrets
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from ...core.errors import BoxRunError, validation
from .api import Api, error_of
from .execs import start_exec

#: Prints ``dir``, ``file`` or ``none`` for the path ``$1`` in the box.
PROBE = 'if [ -d "$1" ]; then echo dir; elif [ -e "$1" ]; then echo file; else echo none; fi'


def remote(spec: str) -> tuple[str, str] | None:
    """``(box, path)`` of a ``BOX:PATH`` argument; ``None`` for a host path."""
    box, sep, path = spec.partition(":")
    if not sep or not box or box.startswith((".", "/", "~")):
        return None
    if not path.startswith("/"):
        raise validation(f"the path in the box must be absolute: {spec!r}")
    return box, path


def _sh(api: Api, box: str, script: str, *argv: str) -> str:
    """Run a POSIX shell script in ``box`` quietly; its stdout, or an error with its stderr."""
    ex = start_exec(api, box, ["/bin/sh", "-c", script, "sh", *argv])
    out: dict[str, list[str]] = {"stdout": [], "stderr": []}
    for event, data, _ in api.events(f"/v1/boxes/{ex['box_id']}/exec/{ex['id']}/events"):
        if event == "log":
            out.get(data.get("stream"), out["stdout"]).append(data.get("data") or "")
        elif event == "exit" and json.loads(data.get("data") or "{}").get("exit_code") != 0:
            raise BoxRunError("RUNTIME_ERROR", "".join(out["stderr"]).strip()[-2000:]
                              or f"{argv[0] if argv else script} failed in the box")
    return "".join(out["stdout"]).strip()


def _kind(api: Api, box: str, path: str) -> str:
    return _sh(api, box, PROBE, path)


def _scratch(path: str) -> str:
    """A scratch file next to ``path`` in the box (not /tmp: a BoxLite guest's tmpfs)."""
    return posixpath.join(posixpath.dirname(path.rstrip("/")) or "/",
                          f".boxrun-cp-{secrets.token_hex(6)}.tar")


def upload(api: Api, src: Path, box: str, dest: str) -> str:
    """Copy ``src`` (a file or folder) to ``dest`` in ``box``; where it went."""
    if not src.exists():
        raise validation(f"no such file or folder: {src}")
    if _kind(api, box, dest) == "dir":
        dest = posixpath.join(dest, src.name)
    if src.is_file():
        _put(api, box, src, dest)
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "folder.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(src, arcname=".")
        scratch = _scratch(dest)
        _put(api, box, archive, scratch)
        _sh(api, box, 'mkdir -p "$2" && tar -xf "$1" -C "$2"; rc=$?; rm -f "$1"; exit $rc',
            scratch, dest)
    return dest


def _put(api: Api, box: str, src: Path, dest: str) -> None:
    with src.open("rb") as data:
        api.call("POST", f"/v1/boxes/{box}/files/upload",
                 files={"file": (src.name, data)}, data={"dest": dest})


def download(api: Api, box: str, path: str, dest: Path) -> Path:
    """Copy ``path`` (a file or folder) in ``box`` to ``dest``; where it went."""
    kind = _kind(api, box, path)
    if kind == "none":
        raise BoxRunError("RUNTIME_ERROR", f"no such file or folder in {box}: {path}")
    if dest.is_dir():
        dest = dest / (posixpath.basename(path.rstrip("/")) or "root")
    if kind == "file":
        _get(api, box, path, dest)
        return dest
    scratch = _scratch(path)
    _sh(api, box, 'tar -cf "$1" -C "$2" .', scratch, path)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            archive = Path(tmp) / "folder.tar"
            _get(api, box, scratch, archive)
            dest.mkdir(parents=True, exist_ok=True)
            with tarfile.open(archive) as tar:
                tar.extractall(dest, filter=_safe)
    finally:
        _sh(api, box, 'rm -f "$1"', scratch)
    return dest


def _safe(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
    """The box made this archive: tarfile's ``data`` filter (no absolute paths, ``..``,
    links out, devices or set-id bits), and no sparse files (which expand on the host)."""
    if member.issparse():
        raise tarfile.FilterError(f"sparse file refused: {member.name!r}")
    return tarfile.data_filter(member, path)


def _get(api: Api, box: str, path: str, dest: Path) -> None:
    with api.http.stream("POST", f"/v1/boxes/{box}/files/download", json={"path": path},
                         timeout=600) as resp:
        if resp.status_code >= 400:
            raise error_of(resp)
        with dest.open("wb") as out:
            for chunk in resp.iter_bytes():
                out.write(chunk)


def cp(api: Api, args: argparse.Namespace) -> int:
    src, dst = remote(args.src), remote(args.dst)
    if (src is None) == (dst is None):
        raise validation("one of SRC and DST must be BOX:PATH, the other a host path")
    try:
        if dst is not None:
            where = upload(api, Path(args.src), *dst)
            print(f"Uploaded {args.src} to {dst[0]}:{where}")
        else:
            assert src is not None
            where_local = download(api, *src, Path(args.dst))
            print(f"Downloaded {args.src} to {where_local}")
    except (OSError, tarfile.TarError) as exc:
        raise BoxRunError("RUNTIME_ERROR", str(exc)) from None
    return 0


def add_parsers(sub: Any, client: Any) -> None:
    p = sub.add_parser("cp", help="copy files or folders between the host and a box")
    p.add_argument("src", metavar="SRC", help="host path or BOX:PATH")
    p.add_argument("dst", metavar="DST", help="host path or BOX:PATH")
    p.set_defaults(run=client(cp))
