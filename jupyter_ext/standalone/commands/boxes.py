"""Box verbs: ``create``, ``ls``, ``info``, ``start``, ``stop``, ``rm``, ``gc``."""

from __future__ import annotations

import argparse
import threading
from typing import Any

from ...core.errors import BoxRunError, validation
from ...core.resources import DEFAULT_DISK_GB
from . import images, output
from .api import Api


def key_values(pairs: list[str] | None, flag: str) -> dict[str, str] | None:
    """``K=V`` arguments as a dict."""
    if not pairs:
        return None
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise validation(f"{flag} takes KEY=VALUE, not {pair!r}")
        result[key] = value
    return result


def volume(spec: str) -> dict[str, Any]:
    """``/host:/guest[:ro|rw]`` as the API's volume object."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not all(parts[:2]):
        raise validation(f"a volume is /host:/guest[:ro], not {spec!r}")
    if not (parts[0].startswith("/") and parts[1].startswith("/")):
        raise validation(f"volume paths must be absolute: {spec!r}")
    mode = parts[2] if len(parts) == 3 else "rw"
    if mode not in ("ro", "rw"):
        raise validation(f"a volume's mode is ro or rw, not {mode!r}")
    return {"host_path": parts[0], "guest_path": parts[1], "readonly": mode == "ro"}


def add_disk_flag(parser: argparse.ArgumentParser) -> None:
    """``-d/--disk``; left out, the server picks (:data:`DEFAULT_DISK_GB`, or its ceiling
    where that is lower)."""
    parser.add_argument("-d", "--disk", type=int,
                        help=f"disk size in GB (default {DEFAULT_DISK_GB}, or the server's "
                             "max_disk_gb if lower)")


def box_flags() -> argparse.ArgumentParser:
    """The flags of a new box, shared by ``create`` and ``shell``."""
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("image", nargs="?", default="default",
                       help="image or alias: default, ubuntu, python… (default: default)")
    flags.add_argument("-n", "--name", help="box name")
    flags.add_argument("--cpu", type=int, default=2, help="CPU cores (default 2)")
    flags.add_argument("-m", "--memory", type=int, default=1024, help="memory in MB (default 1024)")
    add_disk_flag(flags)
    flags.add_argument("--network", action="store_true", help="enable networking")
    flags.add_argument("-v", "--volume", action="append", metavar="HOST:GUEST[:ro]",
                       help="mount a host folder (repeatable)")
    flags.add_argument("-e", "--env", action="append", metavar="K=V",
                       help="environment variable (repeatable)")
    return flags


def create_box(api: Api, args: argparse.Namespace) -> dict[str, Any]:
    """Create a box from ``box_flags``, with a progress bar fed by the lifecycle events."""
    body: dict[str, Any] = {"image": args.image, "cpu": args.cpu, "memory_mb": args.memory,
                            "disk_size_gb": args.disk, "network": args.network}
    if args.name:
        body["name"] = args.name
    if env := key_values(args.env, "--env"):
        body["env"] = env
    if args.volume:
        body["volumes"] = [volume(v) for v in args.volume]
    try:
        return _post_box(api, body, args.name)
    except BoxRunError as err:
        if not images.build_missing(api, err):
            raise
    return _post_box(api, body, args.name)


def _post_box(api: Api, body: dict[str, Any], name: str | None) -> dict[str, Any]:
    with output.progress(2, f"creating a box of {body['image']}") as bar:
        done = threading.Event()
        # a daemon: its stream may wait for the next keep-alive before it sees ``done``
        threading.Thread(target=_follow_create, args=(Api(api.target), name, bar, done),
                         daemon=True).start()
        try:
            box = api.call("POST", "/v1/boxes", json=body)
        finally:
            done.set()
        bar.n = 2
        bar.set_description_str(f"{box['id']}: {box['status']}")
    return box


def _follow_create(api: Api, name: str | None, bar: Any, done: threading.Event) -> None:
    """Move ``bar`` on the ``created``/``started`` events of the box being created (the
    one named ``name``, else the first created after the request)."""
    box_id = None
    try:
        for event, data, _ in api.events("/v1/events"):
            if done.is_set():
                return
            box = data.get("box") or {}
            if box_id is None and event == "created" and name in (None, box.get("name")):
                box_id = box.get("id")
            if box_id is not None and box.get("id") == box_id and not done.is_set():
                bar.n = {"created": 1, "started": 2}.get(event, bar.n)
                bar.set_description_str(f"{box_id}: {event}")
    except BoxRunError:
        pass  # the bar is a nicety: the create's reply says what happened
    finally:
        api.close()


def create(api: Api, args: argparse.Namespace) -> int:
    box = create_box(api, args)
    print(box["id"])
    output.note(f"created {box.get('name') or box['id']} ({box['image']}, {box['status']})")
    return 0


def ls(api: Api, args: argparse.Namespace) -> int:
    params = {"status": args.status} if args.status and args.status != "all" else {}
    boxes = api.call("GET", "/v1/boxes", params=params)
    if args.json:
        output.as_json(boxes)
    elif not boxes:
        print("No boxes found.")
    else:
        output.table(["ID", "NAME", "STATUS", "IMAGE", "CPU", "MEM", "DISK", "CREATED"],
                     [[b["id"], b["name"] or "", b["status"], b["image"], b["cpu"],
                       f"{b['memory_mb']}MB", f"{b['disk_size_gb']}G",
                       (b["created_at"] or "")[:19]] for b in boxes], right=frozenset({4, 5, 6}))
    return 0


def info(api: Api, args: argparse.Namespace) -> int:
    output.as_json(api.box(args.box))
    return 0


def start(api: Api, args: argparse.Namespace) -> int:
    print(f"Started {api.call('POST', f'/v1/boxes/{args.box}:start')['id']}")
    return 0


def stop(api: Api, args: argparse.Namespace) -> int:
    print(f"Stopped {api.call('POST', f'/v1/boxes/{args.box}:stop')['id']}")
    return 0


def rm(api: Api, args: argparse.Namespace) -> int:
    api.call("DELETE", f"/v1/boxes/{args.box}", params={"force": "true"} if args.force else {})
    print(f"Removed {args.box}")
    return 0


def gc(api: Api, args: argparse.Namespace) -> int:
    removed = api.call("POST", "/v1/gc", json={"older_than": args.older_than})["removed"]
    print(f"Removed {removed} box(es)")
    return 0


def add_parsers(sub: Any, client: Any) -> None:
    """The box verbs, each run by ``client``."""
    p = sub.add_parser("create", parents=[box_flags()], help="create a box and print its id")
    p.set_defaults(run=client(create))
    p = sub.add_parser("ls", help="list boxes")
    p.add_argument("-s", "--status", help="running, stopped, creating… or all (default all)")
    p.add_argument("--json", action="store_true", help="the boxes as JSON")
    p.set_defaults(run=client(ls))
    for verb, func, text in (("info", info, "a box as JSON"), ("start", start, "start a stopped box"),
                             ("stop", stop, "stop a box (its disk is kept)")):
        p = sub.add_parser(verb, help=text)
        p.add_argument("box", metavar="BOX", help="box id or name")
        p.set_defaults(run=client(func))
    p = sub.add_parser("rm", help="remove a box")
    p.add_argument("box", metavar="BOX", help="box id or name")
    p.add_argument("-f", "--force", action="store_true", help="remove it even if running")
    p.set_defaults(run=client(rm))
    p = sub.add_parser("gc", help="remove boxes stopped for a while")
    p.add_argument("--older-than", type=int, default=3600, metavar="SECS",
                   help="stopped for longer than this (default 3600)")
    p.set_defaults(run=client(gc))
