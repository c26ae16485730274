"""A box's network is its own: the host's loopback and link-local addresses are out of
reach with or without ``network``, outbound connections work with it, and a box
cannot listen on host ports (issue: escapes)."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator

import pytest

from .conftest import Boxes


def host_address() -> str | None:
    """The host's first global IPv4 address, if it has one."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"],
                         capture_output=True, text=True).stdout
    return out.split()[3].split("/")[0] if out.split() else None


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A host service on 127.0.0.1 that must stay the host's own."""
    server = socket.create_server(("127.0.0.1", 0))
    yield server
    server.close()


def connect(boxes: Boxes, box: dict, hostile: str, ip: str, port: int) -> str:
    code, out, err = boxes.run(box, hostile, "connect", ip, str(port))
    assert code == 0, err
    return out.strip()


@pytest.mark.parametrize("network", [False, True])
def test_host_loopback_is_out_of_reach(boxes: Boxes, hostile_binary, listener, network):
    port = listener.getsockname()[1]
    box = boxes.create(network=network)
    hostile = boxes.install(box, hostile_binary)
    for ip in ("127.0.0.1", "10.0.2.2"):  # the box's own loopback; slirp's host alias
        assert connect(boxes, box, hostile, ip, port) != "connected", ip


@pytest.mark.parametrize("network", [False, True])
def test_outbound_only_with_network(boxes: Boxes, hostile_http, hostile_binary, network):
    address = host_address()
    if address is None:
        pytest.skip("this host has no global IPv4 address to stand for the outside")
    outside = socket.create_server((address, 0))
    box = boxes.create(network=network)
    hostile = boxes.install(box, hostile_binary)
    result = connect(boxes, box, hostile, address, outside.getsockname()[1])
    outside.close()
    assert (result == "connected") is network, result
    _, links, _ = boxes.run(box, "cat", "/proc/net/dev")
    names = {line.split(":")[0].strip() for line in links.splitlines()[2:]}
    assert names == ({"lo", "tap0"} if network else {"lo"})
    if network:
        metrics = hostile_http.get(f"/v1/boxes/{box['id']}/metrics").json()
        assert metrics["net_rx_bytes"] > 0 and metrics["net_tx_bytes"] > 0, metrics


def host_link_local6() -> list[str]:
    """The host's IPv6 link-local addresses, each with its interface (``ADDR%IF``)."""
    out = subprocess.run(["ip", "-6", "-o", "addr", "show", "scope", "link"],
                         capture_output=True, text=True).stdout
    return [f"{line.split()[3].split('/')[0]}%{line.split()[1]}" for line in out.splitlines()]


@pytest.mark.parametrize("network", [False, True])
def test_host_ipv6_loopback_and_link_local_are_out_of_reach(boxes: Boxes, hostile_binary,
                                                             network):
    services = []
    for address in ["::1", *host_link_local6()]:
        family, kind, _, _, where = socket.getaddrinfo(address, 0, type=socket.SOCK_STREAM)[0]
        service = socket.socket(family, kind)
        service.bind(where)
        service.listen()
        services.append((address.partition("%")[0], service))
    box = boxes.create(network=network)
    hostile = boxes.install(box, hostile_binary)
    for address, service in services:
        port = service.getsockname()[1]
        scopes = ["%lo", "%tap0"] if network and address.startswith("fe80") else ["%lo"]
        for target in [address] if address == "::1" else [address + s for s in scopes]:
            assert connect(boxes, box, hostile, target, port) != "connected", target
        service.close()


@pytest.fixture
def link_local() -> Iterator[str]:
    """169.254.169.254 on the host (a cloud's metadata service), on its loopback
    interface for the length of the test."""
    if os.geteuid() != 0:
        pytest.skip("adding a link-local address to the host needs root")
    address = "169.254.169.254"
    subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], check=True)
    try:
        yield address
    finally:
        subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", "lo"], check=False)


def test_link_local_and_metadata_are_out_of_reach(boxes: Boxes, hostile_binary, link_local):
    service = socket.create_server((link_local, 0))
    port = service.getsockname()[1]
    with socket.create_connection((link_local, port), timeout=3):
        pass  # the host itself reaches it
    box = boxes.create(network=True)
    hostile = boxes.install(box, hostile_binary)
    code, out, err = boxes.run(box, hostile, "reroute", link_local)  # box root's netlink
    assert code == 0, err
    attempts = dict(line.split() for line in out.splitlines())
    assert set(attempts) == {"delroute", "deladdr", "newroute"} and "0" not in attempts.values()
    result = connect(boxes, box, hostile, link_local, port)
    service.close()
    assert result != "connected"


def test_a_box_cannot_listen_on_host_ports(boxes: Boxes, hostile_binary):
    box = boxes.create(network=True)
    hostile = boxes.install(box, hostile_binary)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    listening = boxes.start(box, hostile, "listen", str(port))
    assert connect(boxes, box, hostile, "127.0.0.1", port) == "connected"  # it is up
    for ip in ("127.0.0.1", host_address() or "127.0.0.1"):
        with pytest.raises(OSError):
            socket.create_connection((ip, port), timeout=2).close()
    boxes.http.post(f"/v1/boxes/{box['id']}/exec/{listening}:cancel")
