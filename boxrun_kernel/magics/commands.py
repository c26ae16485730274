"""What each ``%boxrun`` subcommand does, and ``%%boxrun``, with errors told in words."""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from IPython.display import display

from jupyter_ext.images.recipes import RECIPES

from ..client import BoxUnavailable
from ..widgets import BoxInfo, BoxMonitor, Progress
from ..widgets.render import text_table
from .api import Server, explain
from .build import build_image
from .cell import CellSessions
from .parser import UsageError, build_parser, help_text, parse
from .runner import kernel_hook, runner


class Commands:
    """The ``%boxrun`` commands of one kernel, and its current box; ``display`` shows the
    widgets (IPython's, unless the kernel has no IPython shell)."""

    def __init__(self, display: Callable[[Any], None] = display,
                 current: str | None = None) -> None:
        self.parser = build_parser()
        self.display = display
        self.current = current
        self.cells = CellSessions()

    @property
    def server(self) -> Server:
        return runner().server

    def line(self, line: str) -> None:
        """Run a ``%boxrun`` line."""
        if line.strip() in ("?", "??"):  # IPython answers these itself, other kernels don't
            print(help_text(self.parser))
            return
        with reporting():
            try:
                argv = shlex.split(line)
            except ValueError as exc:
                raise UsageError(f"{self.parser.format_usage()}%boxrun: error: {exc}") from exc
            args = parse(self.parser, argv)
            getattr(self, f"do_{args.command}")(args)

    def cell(self, line: str, code: str) -> None:
        """Run a ``%%boxrun [NAME]`` cell in the box."""
        with reporting():
            names = shlex.split(line)
            if len(names) > 1:
                raise UsageError("usage: %%boxrun [NAME]\n%%boxrun: error: one box name at most")
            self.cells.run(self.box(names[0] if names else None), code)

    def box(self, name: str | None) -> str:
        """``name``, else the current box."""
        if name:
            return name
        if self.current is None:
            raise UsageError("%boxrun: error: no box named and no current box: name one, "
                             "or make one current with %boxrun use NAME")
        return self.current

    def do_ls(self, args: argparse.Namespace) -> None:
        boxes = runner().run(self.server.get("/v1/boxes"))
        rows = [[("* " if b["name"] == self.current else "  ") + b["name"], b["status"],
                 b["image"], b["cpu"], f"{b['memory_mb']} MiB", b["id"]] for b in boxes]
        print(text_table(["  NAME", "STATUS", "IMAGE", "CPU", "MEMORY", "ID"], rows)
              if rows else "no boxes")

    def do_create(self, args: argparse.Namespace) -> None:
        spec = {"image": args.image, "network": args.network, "volumes": args.volume,
                **({"env": dict(args.env)} if args.env else {}),
                **({"name": args.name} if args.name else {}),
                **({"cpu": args.cpu} if args.cpu else {}),
                **({"memory_mb": args.memory} if args.memory else {})}
        progress = Progress(f"creating a box of {args.image}")
        self.display(progress)
        try:
            box = runner().run(progress.during(self.server.create(spec)))
        except BaseException:
            progress.finish(f"could not create a box of {args.image}", ok=False)
            raise
        timings = box.get("timings") or {}
        progress.finish(f"box {box['name']} is {box['status']} ({box['image']})")
        self.current = box["name"]
        print(f"box {box['name']} ({box['id']}) is {box['status']}: {box['image']}, "
              f"{box['cpu']} cpu, {box['memory_mb']} MiB; now the current box"
              + (f" (boot {timings['boot_ms']:.0f} ms)" if "boot_ms" in timings else ""))

    def do_info(self, args: argparse.Namespace) -> None:
        box = runner().run(self.server.box(self.box(args.name)))
        self.display(BoxInfo(box["id"]))

    def do_start(self, args: argparse.Namespace) -> None:
        box = runner().run(self.server.act(self.box(args.name), "start"))
        print(f"box {box['name']} is {box['status']}")

    def do_stop(self, args: argparse.Namespace) -> None:
        name = self.box(args.name)
        box = runner().run(self.server.act(name, "stop"))
        self.cells.close(name)
        print(f"box {box['name']} is {box['status']} (its disk is kept)")

    def do_rm(self, args: argparse.Namespace) -> None:
        name = self.box(args.name)
        runner().run(self.server.remove(name, args.force))
        self.cells.close(name)
        if self.current == name:
            self.current = None
        print(f"box {name} removed")

    def do_exec(self, args: argparse.Namespace) -> None:
        name = self.box(args.name)
        run = runner()
        ex = run.run(self.server.start_exec(name, args.cmd))
        path = f"/v1/boxes/{name}/exec/{ex['id']}"
        try:
            for event, data, _ in run.iterate(self.server.events(path + "/events")):
                if event == "log":
                    stream = sys.stderr if data["stream"] == "stderr" else sys.stdout
                    stream.write(data["data"])
                    stream.flush()
                elif event == "exit":
                    end = json.loads(data["data"])
                    if end.get("exit_code") != 0:
                        print(f"exit code {end.get('exit_code')}"
                              + (f": {end['error']}" if end.get("error") else ""),
                              file=sys.stderr)
        except KeyboardInterrupt:
            run.run(self.server.client.call("POST", path + ":cancel"))
            print("canceled", file=sys.stderr)

    def do_upload(self, args: argparse.Namespace) -> None:
        local = Path(args.local).expanduser()
        if not local.is_file():
            raise UsageError(f"%boxrun upload: error: no such local file: {local}")
        name, remote = self.box(args.name), args.remote or f"/root/{local.name}"
        runner().run(self.server.upload(name, local, remote))
        print(f"uploaded {local} to {name}:{remote} ({local.stat().st_size} bytes)")

    def do_download(self, args: argparse.Namespace) -> None:
        name = self.box(args.name)
        data = runner().run(self.server.download(name, args.remote))
        local = Path(args.local or PurePosixPath(args.remote).name).expanduser()
        local.write_bytes(data)
        print(f"downloaded {name}:{args.remote} to {local} ({len(data)} bytes)")

    def do_images(self, args: argparse.Namespace) -> None:
        images = {i["name"]: i for i in runner().run(self.server.get("/v1/images"))}
        rows = [[n, i["ref"], f"{i['size_bytes'] / 1e6:.0f} MB", i["created_at"]]
                for n, i in images.items()]
        rows += [[n, "-", "-", f"not built: %boxrun build {n}"] for n in RECIPES
                 if n not in images]
        print(text_table(["NAME", "REF", "SIZE", "CREATED"], rows))

    def do_build(self, args: argparse.Namespace) -> None:
        images = runner().run(self.server.get("/v1/images"))
        if not args.force and any(i["name"] == args.image for i in images):
            print(f"image {args.image} is already built (--force builds it again)")
            return
        progress = Progress(f"building {args.image}")
        self.display(progress)
        try:
            done = runner().run(build_image(self.server, args.image, progress.update))
        except BaseException:
            progress.finish(f"building {args.image} failed", ok=False)
            raise
        progress.finish(done)

    def do_monitor(self, args: argparse.Namespace) -> None:
        self.display(BoxMonitor())

    def do_snapshot(self, args: argparse.Namespace) -> None:
        name = self.box(args.name)
        snap = runner().run(self.server.snapshot(name, args.snapshot))
        print(f"snapshot {snap['name']} of box {name}: {_size(snap['size_bytes'])}, "
              + ("processes and memory included" if snap["memory"] else "its disk only"))

    def do_snapshots(self, args: argparse.Namespace) -> None:
        name = self.box(args.name)
        snaps = runner().run(self.server.get(f"/v1/boxes/{name}/snapshots"))
        rows = [[s["name"], "yes" if s["memory"] else "disk only", _size(s["size_bytes"]),
                 s["created_at"], s["id"]] for s in snaps]
        print(text_table(["NAME", "MEMORY", "SIZE", "CREATED", "ID"], rows)
              if rows else f"box {name} has no snapshots")

    def do_restore(self, args: argparse.Namespace) -> None:
        name = self.box(args.name)
        snap, box = runner().run(self.server.restore(name, args.snapshot))
        hook = kernel_hook("box_restored")
        if hook is not None:
            hook(box["name"] or box["id"], snap["memory"])
        if snap["memory"]:
            print(f"box {name} is back at snapshot {snap['name']}: its processes go on from "
                  "there (the interpreter too, with its variables)")
            return
        self.cells.close(name)
        print(f"box {name} is back at snapshot {snap['name']}, its disk only: its processes "
              "were restarted, so the interpreter was restarted and its variables are gone",
              file=sys.stderr)

    def do_fork(self, args: argparse.Namespace) -> None:
        name = self.box(args.name)
        snap, box = runner().run(self.server.fork(name, args.snapshot, args.new))
        # the interpreter of this kernel in the box, which a memory fork carries on
        session_in = kernel_hook("session_in") if snap["memory"] else None
        sid = session_in(name) if session_in is not None else None
        print(f"box {box['name']} ({box['id']}) is a fork of snapshot {args.snapshot} of box "
              f"{name}, {box['status']}; %boxrun use {box['name']}"
              + (f" --attach {sid} runs the next cells there, on this interpreter's copy"
                 if sid else " runs the next cells there"))

    def do_use(self, args: argparse.Namespace) -> None:
        hook = kernel_hook()
        if args.attach and hook is None:
            raise UsageError("%boxrun use: error: --attach needs the BoxRun kernel")
        box = runner().run(self.server.box(args.name))
        in_box = kernel_hook("in_box")
        if in_box is not None and in_box(box["name"]):
            print(f"box {box['name']} is the current box already; the next cells run there, "
                  "on the same interpreter")
            return
        session = runner().run(self.server.attach(box["id"], args.attach)) if args.attach else None
        self.current = box["name"]
        if hook is not None:
            hook(box["name"], *([(box, session)] if session else []))
        print(f"box {box['name']} is the current box"
              + ("; the next cells run there" if hook else " of %%boxrun and %boxrun")
              + (f", on the interpreter of session {args.attach} (its variables are there)"
                 if session else ""))


def _size(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


@contextlib.contextmanager
def reporting() -> Iterator[None]:
    """Usage mistakes and server errors as messages, never tracebacks (a cell's own error
    in the box stays an error of the cell: :class:`~.cell.BoxCellError`)."""
    try:
        yield
    except UsageError as exc:
        print(exc, file=sys.stderr)
    except BoxUnavailable as exc:
        print(explain(exc), file=sys.stderr)
