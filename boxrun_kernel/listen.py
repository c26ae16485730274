"""The kernel's ports, listened on before ipykernel is imported (stdlib only).

A client connects the kernel's channels as soon as it has started it, and libzmq tries
again only every 100 ms while nothing listens on a port. The BoxRun kernel answers its
first ``kernel_info_request`` within a few ms of binding its sockets (the box was opened
while it imported), so a client whose IOPub socket connected on the next try missed the
``status`` messages around that reply and waited for its ``iopub_welcome`` instead.
:func:`begin` listens on the TCP ports of the connection file (``-f``) at once; the
kernel's app binds its ZMQ sockets to these listening sockets (``ZMQ_USE_FD``,
:func:`take`) and so takes the connections that waited meanwhile.
"""

from __future__ import annotations

import json
import socket

#: The channels listened on early (the heartbeat binds in a thread of its own).
CHANNELS = ("shell", "iopub", "stdin", "control")

_listening: dict[int, socket.socket] = {}


def begin(argv: list[str]) -> None:
    """Listen on the TCP ports of the connection file that ``argv`` names (``-f FILE``);
    any port that cannot be listened on is left to the kernel's own bind."""
    if len(argv) < 3 or argv[1] != "-f":
        return
    try:
        with open(argv[2]) as f:
            info = json.load(f)
    except (OSError, ValueError):
        return
    if not isinstance(info, dict) or info.get("transport", "tcp") != "tcp":
        return
    host = info.get("ip") or "127.0.0.1"
    host = "" if host in ("*", "0.0.0.0") else host  # noqa: S104 - as the kernel would bind
    for name in CHANNELS:
        port = info.get(f"{name}_port")
        if not isinstance(port, int) or port <= 0:
            continue
        try:
            family, kind, proto, _, address = socket.getaddrinfo(
                host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
            sock = socket.socket(family, kind, proto)
        except OSError:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(128)
        except OSError:
            sock.close()
            continue
        _listening[port] = sock


def take(port: int) -> int | None:
    """The descriptor of the socket listening on ``port`` (once; its owner is then the
    caller), or None."""
    sock = _listening.pop(port, None)
    return None if sock is None else sock.detach()
