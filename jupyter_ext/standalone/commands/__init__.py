"""The client commands of ``boxrun`` (``create``, ``exec``, ``attach``…): each talks to a
server found by :mod:`.connection`, starting one when none answers."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import Any

from ...core.errors import BoxRunError
from . import boxes, completion, copy, execs, images, output, terminal
from .api import Api
from .connection import endpoint, ensure_server

Verb = Callable[[Api, argparse.Namespace], int]


def client(verb: Verb) -> Callable[[argparse.Namespace], int]:
    """``verb`` with a server to talk to; its exit status, 1 for an API error."""
    def run(args: argparse.Namespace) -> int:
        logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
        try:
            target = endpoint()
            ensure_server(target)
            api = Api(target)
            try:
                return verb(api, args)
            finally:
                api.close()
        except BoxRunError as err:
            return output.error(err)
        except KeyboardInterrupt:
            return 130
    return run


#: Verbs that take a command after ``--``.
COMMAND_VERBS = ("exec", "run")


def parse_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``argv`` parsed, the command after the first ``--`` of ``exec``/``run`` kept
    verbatim (argparse before Python 3.12 also drops a second ``--`` inside it)."""
    if argv[:1] and argv[0] in COMMAND_VERBS and "--" in argv:
        split = argv.index("--")
        args = parser.parse_args(argv[:split])
        args.cmd = args.cmd + argv[split + 1:]
    else:
        args = parser.parse_args(argv)
    if argv[:1] and argv[0] in COMMAND_VERBS and not args.cmd:
        parser.error(f"{argv[0]} needs a command: boxrun {argv[0]} … -- CMD …")
    return args


def add_parsers(sub: Any, top: argparse.ArgumentParser) -> None:
    """Every client command, on the subcommands ``sub`` of the parser ``top``."""
    for module in (boxes, images, execs, terminal, copy):
        module.add_parsers(sub, client)
    completion.add_parsers(sub, top)
