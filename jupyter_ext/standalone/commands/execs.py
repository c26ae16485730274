"""Command verbs: ``exec``, ``logs`` (replay an exec) and ``run`` (a throwaway box)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from ...core.errors import BoxRunError, validation
from . import output
from .api import Api
from .boxes import add_disk_flag, key_values

#: Exit status of a command that ended without an exit code (timeout, runtime error).
NO_EXIT_CODE = 1
#: How many times a dropped event stream is resumed before giving up.
RESUMES = 5


def follow(api: Api, box_id: str, exec_id: str, cancel: bool = True) -> int:
    """Write an exec's output to our stdout and stderr as it comes; its exit status.

    A dropped stream resumes after the last event seen; Ctrl-C cancels the exec (with
    ``cancel``) or only stops following it.
    """
    path = f"/v1/boxes/{box_id}/exec/{exec_id}/events"
    last: int | None = None
    streams = {"stdout": sys.stdout, "stderr": sys.stderr}
    try:
        for attempt in range(RESUMES + 1):
            try:
                for event, data, sse_id in api.events(path, last):
                    last = int(sse_id) if sse_id.isdigit() else last
                    if event == "log":
                        out = streams.get(data.get("stream"), sys.stdout)
                        out.write(data.get("data") or "")
                        out.flush()
                    elif event == "truncated":
                        output.note("the exec wrote more than the server stores; the rest of "
                                    "its output is not kept")
                    elif event == "exit":
                        return _exit_status(data)
            except BoxRunError as err:
                if err.code != "UNREACHABLE" or attempt == RESUMES:
                    raise
                time.sleep(0.5)
                continue
            # the stream ended without ``exit``: done if the exec is, else resume
            ex = api.call("GET", f"/v1/boxes/{box_id}/exec/{exec_id}")
            if ex["status"] != "running":
                return _status_of(ex)
        raise BoxRunError("UNREACHABLE", f"the output of {exec_id} kept breaking off")
    except KeyboardInterrupt:
        return _stop(api, box_id, exec_id, cancel, 130)
    except BrokenPipeError:  # our reader went away (`| head`): as SIGPIPE would end it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return _stop(api, box_id, exec_id, cancel, 141)


def _stop(api: Api, box_id: str, exec_id: str, cancel: bool, status: int) -> int:
    """Cancel the exec (with ``cancel``) as we stop following it; ``status``."""
    if cancel:
        try:
            api.call("POST", f"/v1/boxes/{box_id}/exec/{exec_id}:cancel", timeout=10)
            output.note(f"canceled {exec_id}")
        except BoxRunError as err:
            if err.code != "EXEC_ALREADY_FINISHED":
                output.error(err)
    return status


def _exit_status(data: dict[str, Any]) -> int:
    try:
        result = json.loads(data.get("data") or "{}")
    except ValueError:
        result = {}
    if result.get("error"):
        output.note(str(result["error"]))
    code = result.get("exit_code")
    return code & 0xFF if isinstance(code, int) else NO_EXIT_CODE


def _status_of(ex: dict[str, Any]) -> int:
    if ex.get("error_message"):
        output.note(ex["error_message"])
    code = ex.get("exit_code")
    return code & 0xFF if isinstance(code, int) else NO_EXIT_CODE


def start_exec(api: Api, box: str, cmd: list[str], env: dict[str, str] | None = None,
               workdir: str | None = None, timeout: int | None = None) -> dict[str, Any]:
    """Start ``cmd`` in ``box``; the exec object."""
    body: dict[str, Any] = {"cmd": cmd}
    if env:
        body["env"] = env
    if workdir:
        body["workdir"] = workdir
    if timeout is not None:
        if timeout <= 0:
            raise validation("--timeout must be a positive number of seconds")
        body["timeout_ms"] = timeout * 1000
    return api.call("POST", f"/v1/boxes/{box}/exec", json=body)


def exec_(api: Api, args: argparse.Namespace) -> int:
    ex = start_exec(api, args.box, args.cmd, key_values(args.env, "-e"), args.workdir,
                    args.timeout)
    if args.detach:
        print(ex["id"])
        return 0
    return follow(api, ex["box_id"], ex["id"])


def logs(api: Api, args: argparse.Namespace) -> int:
    box_id = api.box(args.box)["id"]
    return follow(api, box_id, args.exec, cancel=False)


def run(api: Api, args: argparse.Namespace) -> int:
    box = api.call("POST", "/v1/boxes", json={"image": args.image, "disk_size_gb": args.disk})
    try:
        ex = start_exec(api, box["id"], args.cmd, timeout=args.timeout)
        return follow(api, box["id"], ex["id"])
    finally:
        try:
            api.call("DELETE", f"/v1/boxes/{box['id']}", params={"force": "true"})
        except BoxRunError as err:
            output.error(err)


def add_parsers(sub: Any, client: Any) -> None:
    """The command verbs, each run by ``client``."""
    p = sub.add_parser("exec", help="run a command in a box, its output and exit code as ours",
                       usage="%(prog)s BOX [-d] [-t SECS] [-e K=V] [-w DIR] -- CMD…")
    p.add_argument("box", metavar="BOX", help="box id or name")
    p.add_argument("-d", "--detach", action="store_true", help="print the exec id and return")
    p.add_argument("-t", "--timeout", type=int, metavar="SECS", help="kill it after SECS")
    p.add_argument("-e", "--env", action="append", metavar="K=V", help="environment (repeatable)")
    p.add_argument("-w", "--workdir", metavar="DIR", help="working directory in the box")
    p.add_argument("cmd", nargs="*", metavar="CMD", help="the command, after --")
    p.set_defaults(run=client(exec_))
    p = sub.add_parser("logs", help="replay an exec's output")
    p.add_argument("box", metavar="BOX", help="box id or name")
    p.add_argument("exec", metavar="EXEC", help="exec id (exec -d prints it)")
    p.set_defaults(run=client(logs))
    p = sub.add_parser("run", help="run a command in a throwaway box",
                       usage="%(prog)s IMAGE [-t SECS] [-d GB] -- CMD…")
    p.add_argument("image", metavar="IMAGE", help="image or alias")
    p.add_argument("-t", "--timeout", type=int, metavar="SECS", help="kill it after SECS")
    add_disk_flag(p)
    p.add_argument("cmd", nargs="*", metavar="CMD", help="the command, after --")
    p.set_defaults(run=client(run))
