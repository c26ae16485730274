"""The BoxRun kernel listens on its ports before it imports ipykernel (``listen.py``): a
client's connection made meanwhile is taken by the kernel's ZMQ socket once it binds."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from boxrun_kernel import listen

from ..servers import free_port


@pytest.fixture
def connection_file(tmp_path: Path) -> Iterator[tuple[Path, dict[str, int]]]:
    ports = {f"{name}_port": free_port() for name in (*listen.CHANNELS, "hb")}
    path = tmp_path / "kernel.json"
    path.write_text(json.dumps({"transport": "tcp", "ip": "127.0.0.1", "key": "k", **ports}))
    yield path, ports
    for port in ports.values():  # what no test took
        fd = listen.take(port)
        if fd is not None:
            socket.socket(fileno=fd).close()


def test_a_message_sent_before_the_kernel_binds_reaches_it(
        connection_file: tuple[Path, dict[str, int]]) -> None:
    path, ports = connection_file
    listen.begin(["boxrun_kernel", "-f", str(path)])
    ctx = zmq.Context()
    client = ctx.socket(zmq.DEALER)
    client.connect(f"tcp://127.0.0.1:{ports['shell_port']}")
    client.send(b"kernel_info_request")  # connected at once: nothing to retry
    kernel = ctx.socket(zmq.ROUTER)
    fd = listen.take(ports["shell_port"])
    assert fd is not None and listen.take(ports["shell_port"]) is None
    kernel.setsockopt(zmq.USE_FD, fd)
    kernel.bind(f"tcp://127.0.0.1:{ports['shell_port']}")
    assert kernel.poll(5000)
    assert kernel.recv_multipart()[-1] == b"kernel_info_request"
    for sock in (client, kernel):
        sock.close(linger=0)
    ctx.term()


def test_every_channel_but_the_heartbeat_is_listened_on_early(
        connection_file: tuple[Path, dict[str, int]]) -> None:
    path, ports = connection_file
    listen.begin(["boxrun_kernel", "-f", str(path)])
    for name, port in ports.items():
        probe = socket.socket()
        listening = probe.connect_ex(("127.0.0.1", port)) == 0
        probe.close()
        assert listening == (name != "hb_port"), name


def test_nothing_is_listened_on_without_a_tcp_connection_file(
        connection_file: tuple[Path, dict[str, int]]) -> None:
    path, ports = connection_file
    path.write_text(json.dumps({"transport": "ipc", "ip": str(path.parent / "k"), **ports}))
    listen.begin(["boxrun_kernel", "-f", str(path)])
    listen.begin(["boxrun_kernel", "-f", str(path.parent / "missing.json")])
    listen.begin(["boxrun_kernel"])
    assert all(listen.take(port) is None for port in ports.values())
