"""The ``%boxrun`` command line: its subcommands, their arguments, and its help text."""

from __future__ import annotations

import argparse
import re
from typing import Any, NoReturn

SUMMARY = """Manage BoxRun boxes from the notebook; handled here, never sent into a box.

A box is named with -b/--box or as the first argument; without one, the current box
(the last `%boxrun use NAME`, or the box made by `%boxrun create`) is meant. The server
is $BOXRUN_URL, else the socket $BOXRUN_SOCKET, else $BOXRUN_STATE_DIR/boxrun.sock,
else ~/.boxrun/boxrun.sock.

Cell magic: `%%boxrun [NAME]` runs the cell's Python in box NAME (default: the current
box), in an interpreter kept per box, so variables survive from one cell to the next.
"""


class UsageError(Exception):
    """Arguments the command line refused; the message is the usage and the problem."""


class Parser(argparse.ArgumentParser):
    """An argument parser that raises :class:`UsageError` instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.format_usage()}{self.prog}: error: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise UsageError(message or "")


def volume(text: str) -> dict[str, Any]:
    """A ``HOST:GUEST[:ro]`` volume as the API takes it."""
    match = re.fullmatch(r"([^:]+):([^:]+)(:ro|:rw)?", text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:GUEST[:ro]")
    return {"host_path": match[1], "guest_path": match[2], "readonly": match[3] == ":ro"}


def _env(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def _box(sub: argparse.ArgumentParser, positional: bool = True) -> None:
    if positional:
        sub.add_argument("name", nargs="?", metavar="NAME", help="the box (default: current)")
    else:
        sub.add_argument("-b", "--box", dest="name", help="the box (default: current)")


def build_parser() -> Parser:
    """The parser of ``%boxrun`` lines."""
    top = Parser(prog="%boxrun", description=SUMMARY, add_help=False,
                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    def add(name: str, text: str) -> Parser:
        return sub.add_parser(name, help=text, add_help=False)

    add("ls", "list the boxes of the server")
    create = add("create", "create a box and start it (it becomes current)")
    create.add_argument("image", metavar="IMAGE", help="image: python, debian, local/python...")
    create.add_argument("--name", help="the box's name (and hostname)")
    create.add_argument("--cpu", type=int, help="CPUs reserved (default 2)")
    create.add_argument("--memory", type=int, metavar="MiB", help="memory in MiB (default 1024)")
    create.add_argument("--network", action="store_true", help="let the box reach the network")
    create.add_argument("--volume", type=volume, action="append", default=[],
                        metavar="H:G[:ro]", help="mount host folder H at G (repeatable)")
    create.add_argument("--env", type=_env, action="append", default=[], metavar="K=V",
                        help="an environment variable of the box (repeatable)")
    for name, text in (("info", "a live widget of the box: metrics, execs and sessions"),
                       ("start", "start a stopped box"), ("stop", "stop a box (its disk is kept)")):
        _box(add(name, text))
    rm = add("rm", "remove a box")
    _box(rm)
    rm.add_argument("--force", action="store_true", help="remove it even if it runs")
    run = add("exec", "run a command in the box, its output streaming")
    _box(run, positional=False)
    run.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD...", help="the command")
    up = add("upload", "copy a local file into the box")
    _box(up, positional=False)
    up.add_argument("local", metavar="LOCAL")
    up.add_argument("remote", nargs="?", metavar="REMOTE", help="default /root/<name of LOCAL>")
    down = add("download", "copy a file of the box here")
    _box(down, positional=False)
    down.add_argument("remote", metavar="REMOTE", help="absolute path in the box")
    down.add_argument("local", nargs="?", metavar="LOCAL", help="default ./<name of REMOTE>")
    add("images", "list the server's images")
    build = add("build", "build an image of the server's store, with progress")
    build.add_argument("image", metavar="IMAGE", help="debian or python")
    build.add_argument("--force", action="store_true", help="rebuild an image already built")
    add("monitor", "a live widget of every box, with buttons and a create form")
    snap = add("snapshot", "snapshot the current box (-b: another) as NAME; it goes on")
    snap.add_argument("snapshot", metavar="NAME", help="the snapshot's name")
    _box(snap, positional=False)
    _box(add("snapshots", "list the snapshots of a box"))
    restore = add("restore", "put the box back in the state of its snapshot NAME")
    restore.add_argument("snapshot", metavar="NAME")
    _box(restore, positional=False)
    fork = add("fork", "a new box from snapshot NAME of the current box (-b: another)")
    fork.add_argument("snapshot", metavar="NAME")
    fork.add_argument("--name", dest="new", metavar="NEW", help="the new box's name")
    _box(fork, positional=False)
    use = add("use", "make NAME the current box (in the BoxRun kernel: the "
                                     "next cells run there)")
    use.add_argument("name", metavar="NAME")
    use.add_argument("--attach", metavar="SESSION",
                     help="go on with the interpreter of SESSION that NAME, a fork of a memory "
                          "snapshot, carries (its variables are there)")
    return top


def help_text(parser: Parser) -> str:
    """``%boxrun?``: the summary, then every subcommand's usage and options."""
    actions = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    parts = [SUMMARY, "Commands:"]
    for choice in actions._choices_actions:
        sub = actions.choices[choice.dest]
        usage, _, options = sub.format_help().removeprefix("usage: ").partition("\n\n")
        lines = [line for line in options.splitlines() if line and not line.endswith(":")]
        parts += ["", usage.strip(), f"    {choice.help}", *(f"  {line}" for line in lines)]
    return "\n".join(parts)


def parse(parser: Parser, argv: list[str]) -> argparse.Namespace:
    """The arguments of a ``%boxrun`` line; :class:`UsageError` if they are wrong."""
    args = parser.parse_args(argv)
    if args.command == "exec":
        args.cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        if not args.cmd:
            raise UsageError(f"{parser.prog} exec: error: give the command after --, "
                             f"e.g. %boxrun exec -- ls -la")
    return args
