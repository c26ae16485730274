"""The ``boxrun`` command: ``serve``, ``image build|ls|rm`` and the client commands."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import signal
import sys
from pathlib import Path

from traitlets.config import Config

from ..backends.select import CHOICES
from ..core.errors import BoxRunError
from ..images.store import ImageStore
from ..server import BoxRunServer
from . import commands
from .app import make_app
from .commands.images import build as build_image

log = logging.getLogger("boxrun")


def _server_config(args: argparse.Namespace) -> Config:
    config = Config()
    if getattr(args, "stop_boxes", False):
        config.BoxRunServer.stop_boxes_on_exit = True
    if getattr(args, "no_spares", False):
        config.BoxRunServer.warm_spares = False
    for flag, trait in (("state_dir", "state_dir"), ("socket", "socket_path"), ("backend", "backend"),
                        ("max_output_bytes", "max_output_bytes"),
                        ("max_message_bytes", "max_message_bytes")):
        value = getattr(args, flag, None)
        if value is not None:
            config.BoxRunServer[trait] = value
    return config


def _token(args: argparse.Namespace) -> tuple[str | None, str]:
    """The token TCP callers must send (``None``: ``--no-auth``) and where it came from.

    ``BOXRUN_TOKEN`` is taken out of the environment, so no process the server starts
    inherits it.
    """
    from_env = os.environ.pop("BOXRUN_TOKEN", "").strip()
    if args.no_auth:
        return None, "none"
    if args.token_file:
        try:
            token = Path(args.token_file).read_text().strip()
        except OSError as exc:
            raise BoxRunError("VALIDATION_ERROR", f"cannot read --token-file: {exc}") from None
        if not token:
            raise BoxRunError("VALIDATION_ERROR", f"--token-file {args.token_file} is empty")
        return token, f"from {args.token_file}"
    if args.token:
        log.warning("--token is visible to every user of this host (ps); use --token-file or "
                    "$BOXRUN_TOKEN")
        return args.token, "from --token"
    if from_env:
        return from_env, "from $BOXRUN_TOKEN"
    return secrets.token_urlsafe(24), ""


async def _serve(args: argparse.Namespace) -> None:
    server = BoxRunServer(config=_server_config(args))
    token, given = _token(args)
    manager = await server.start(make_app(server, token))
    print(f"BoxRun serving {server.state_dir} on {server.socket_path} "
          f"({manager.backend.name} backend)", flush=True)
    if args.port is not None:
        make_app(server, token).listen(args.port, args.host, max_body_size=1 << 30)
        url = f"http://{args.host}:{args.port}"
        if token is None:
            log.warning("TCP on %s has NO authentication (--no-auth): anyone who can reach "
                        "it can run code in boxes", url)
        else:  # a generated token is said once, as Jupyter does; a given one never
            shown = f"the token {given}" if given else token
            print(f"BoxRun API on {url}; token: {shown}", flush=True)
            print(f"  SDK: BoxRunClient('http://:{'TOKEN' if given else token}@{args.host}:"
                  f"{args.port}')", flush=True)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    await done.wait()
    await server.stop()


def _images(args: argparse.Namespace) -> ImageStore:
    server = BoxRunServer(config=_server_config(args))
    return ImageStore(Path(server.images_dir))


async def _image_build(args: argparse.Namespace) -> None:
    store = _images(args)
    if args.if_missing and store.current(args.name):
        print(f"{args.name} is already built in {store.root}")
        return
    if args.if_missing and store.get(args.name) is not None:
        print(f"{args.name} was built from an older recipe: building it again")
    image = await build_image(store, args.name)
    print(f"built {image.ref} ({image.size_bytes / 1e6:.0f} MB) in {store.root}")


def _image_ls(args: argparse.Namespace) -> None:
    store = _images(args)
    images = {i.name: i for i in store.list()}
    print(f"{'NAME':<10} {'REF':<16} {'SIZE':>8}  CREATED")
    for name in sorted(set(images) | set(store.recipes())):
        image = images.get(name)
        if image is None:
            print(f"{name:<10} {'-':<16} {'-':>8}  not built (boxrun image build {name})")
        else:
            print(f"{name:<10} {image.ref:<16} {image.size_bytes / 1e6:>6.0f}MB  {image.created_at}")


async def _image_rm(args: argparse.Namespace) -> None:
    await _images(args).remove(args.name)
    print(f"removed {args.name}")


def parser() -> argparse.ArgumentParser:
    """The command line."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir", help="state folder (default $BOXRUN_STATE_DIR or ~/.boxrun)")
    top = argparse.ArgumentParser(prog="boxrun", description="BoxRun sandbox server and client")
    sub = top.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", parents=[common], help="run the BoxRun API server")
    serve.add_argument("--socket", help="Unix socket path (default <state-dir>/boxrun.sock)")
    serve.add_argument("--backend", choices=CHOICES,
                       help="sandbox backend (default $BOXRUN_BACKEND or auto: micro-VMs where "
                            "they are known to boot, else gVisor where a probe sandbox "
                            "runs, else the namespace sandbox)")
    serve.add_argument("--max-output-bytes", type=int,
                       help="output stored per exec and per session (default "
                            "$BOXRUN_MAX_OUTPUT_BYTES or 64 MiB)")
    serve.add_argument("--max-message-bytes", type=int,
                       help="longest message relayed from a session's interpreter (default "
                            "$BOXRUN_MAX_MESSAGE_BYTES or 8 MiB)")
    serve.add_argument("--no-spares", action="store_true",
                       help="on gVisor, keep no spare box ready for the next kernel"
                            " (BoxRunServer.warm_spares)")
    serve.add_argument("--stop-boxes", action="store_true",
                       help="stop every running box when the server stops (default: boxes "
                            "keep running and the next server adopts them)")
    serve.add_argument("--host", default="127.0.0.1", help="TCP address (with --port)")
    serve.add_argument("--port", type=int, help="also serve TCP on this port")
    auth = serve.add_mutually_exclusive_group()
    auth.add_argument("--token-file", help="file holding the token TCP callers must send "
                      "(default: $BOXRUN_TOKEN, else generated)")
    auth.add_argument("--token", help="the token itself (visible in ps: prefer --token-file or "
                      "$BOXRUN_TOKEN)")
    auth.add_argument("--no-auth", action="store_true", help="TCP without authentication")
    serve.set_defaults(run=_serve)
    image = sub.add_parser("image", help="manage the local image store")
    isub = image.add_subparsers(dest="image_command", required=True)
    build = isub.add_parser("build", parents=[common], help="build an image from Debian packages")
    build.add_argument("name")
    build.add_argument("--if-missing", action="store_true",
                       help="do nothing if already built from the current recipe")
    build.set_defaults(run=_image_build)
    isub.add_parser("ls", parents=[common], help="list images").set_defaults(run=_image_ls)
    rm = isub.add_parser("rm", parents=[common], help="remove an image")
    rm.add_argument("name")
    rm.set_defaults(run=_image_rm)
    commands.add_parsers(sub, top)
    return top


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``boxrun``."""
    args = commands.parse_args(parser(), sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="[boxrun %(levelname)s] %(message)s")
    try:
        result = args.run(args)
        if asyncio.iscoroutine(result):
            asyncio.run(result)
        elif isinstance(result, int):  # a client command's exit status
            return result
    except BoxRunError as err:
        print(f"boxrun: {err.message}", file=sys.stderr)
        return 1
    return 0
