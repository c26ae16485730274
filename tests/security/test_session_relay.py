"""A box attacking the way the server reaches a session's interpreter (a relay exec to a
socket in the box): whatever answers on the socket is read with the usual bounds, and
ending relays at once costs the server one exec a second, not a loop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from jupyter_ext.sessions.commands import socket_path

from ..api.test_sessions import RELAY_MARK, make_box, of, start
from ..servers import ServerProcess

#: For argv[1] seconds, kills each relay of the box once it is 0.3 s old (it has been
#: greeted: the server would start the next at once); prints how many it killed.
CHURN = ("import os, signal, sys, time\n"
         "end, seen, killed = time.monotonic() + float(sys.argv[1]), {}, set()\n"
         "while time.monotonic() < end:\n"
         "    for p in filter(str.isdigit, os.listdir('/proc')):\n"
         "        try:\n"
         "            if p in seen or int(p) == os.getpid() or b'" + RELAY_MARK + "' not in"
         " open(f'/proc/{p}/cmdline', 'rb').read():\n"
         "                continue\n"
         "        except OSError:\n"
         "            continue\n"
         "        seen[p] = time.monotonic()\n"
         "    for p, when in seen.items():\n"
         "        if p not in killed and time.monotonic() - when > 0.3:\n"
         "            killed.add(p)\n"
         "            try:\n"
         "                os.kill(int(p), signal.SIGKILL)\n"
         "            except OSError:\n"
         "                pass\n"
         "    time.sleep(0.01)\n"
         "print(len(killed))\n")
#: Takes the socket of the agent at argv[1] over (then kills the agent): each client gets
#: an overlong line, junk, and one well-formed message; the connection stays open.
IMPOSTOR = ("import os, signal, socket, sys, time\n"
            "path = sys.argv[1]\n"
            "os.unlink(path)\n"
            "srv = socket.socket(socket.AF_UNIX)\n"
            "srv.bind(path)\n"
            "srv.listen(4)\n"
            "for p in filter(str.isdigit, os.listdir('/proc')):\n"
            "    try:\n"
            "        cmd = open(f'/proc/{p}/cmdline', 'rb').read()\n"
            "    except OSError:\n"
            "        continue\n"
            "    if b'--listen' in cmd and path.encode() in cmd and int(p) != os.getpid():\n"
            "        os.kill(int(p), signal.SIGKILL)\n"
            "kept = []\n"
            "while True:\n"
            "    conn, _ = srv.accept()\n"
            "    kept.append(conn)\n"
            "    conn.sendall(b'x' * (9 << 20) + b'\\n' + b'not json\\n[1, 2]\\n' + b'{\"type\": "
            "\"message\", \"channel\": \"iopub\", \"msg_type\": \"stream\", \"msg_id\": \"m\", "
            "\"parent_msg_id\": null, \"content\": {\"name\": \"stdout\", \"text\": \"impostor\\\\n\"}"
            ", \"metadata\": {}, \"buffers\": []}\\n')\n")


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.http() as client:
        yield client


@pytest.fixture(scope="module")
def box(http: httpx.Client) -> Iterator[dict]:
    made = make_box(http, "python")
    yield made
    http.delete(f"/v1/boxes/{made['id']}", params={"force": "true"})


def slowest_answer(http: httpx.Client, seconds: float) -> float:
    """The slowest of the server's answers to ``/v1/info`` over ``seconds``."""
    slowest, end = 0.0, time.monotonic() + seconds
    while time.monotonic() < end:
        began = time.monotonic()
        assert http.get("/v1/info").status_code == 200
        slowest = max(slowest, time.monotonic() - began)
        time.sleep(0.05)
    return slowest


def test_relays_ended_at_once_are_rate_limited(http: httpx.Client, box: dict) -> None:
    session, _ = start(http, box, "python")
    session.execute("x = 42")
    ex = http.post(f"/v1/boxes/{box['id']}/exec",
                   json={"cmd": ["python3", "-c", CHURN, "6"]}).json()
    slowest = slowest_answer(http, 6.5)
    events = http.get(f"/v1/boxes/{box['id']}/exec/{ex['id']}/events").text
    killed = int(events.split('"data": "')[1].split("\\n")[0])
    assert 2 <= killed <= 7, f"{killed} relays started in 6 s"
    assert slowest < 1.0, f"the server took {slowest:.2f} s to answer meanwhile"
    assert of(session.execute("x"), "execute_result")[0]["content"]["data"]["text/plain"] == "42"


def test_an_impostor_on_the_socket_is_read_with_bounds(http: httpx.Client, box: dict) -> None:
    session, _ = start(http, box, "python")
    path = socket_path(session.id)
    http.post(f"/v1/boxes/{box['id']}/exec", json={"cmd": ["python3", "-c", IMPOSTOR, path]})
    done = threading.Event()
    seen: list[dict] = []

    def follow() -> None:
        seen.extend(session.events(lambda e: e["msg_type"] == "stream"
                                   and "impostor" in e["content"]["text"], timeout=60))
        done.set()
    threading.Thread(target=follow, daemon=True).start()
    slowest = slowest_answer(http, 3)
    assert done.wait(60), "the impostor's well-formed message never came"
    streams = [e["content"]["text"] for e in of(seen, "stream")]
    assert any("over the limit of 8388608 bytes" in t for t in streams), streams
    assert streams[-1] == "impostor\n" and not any("not json" in t for t in streams)
    assert slowest < 1.0, f"the server took {slowest:.2f} s to answer meanwhile"
    assert http.get(session.path).json()["status"] != "dead"
    assert http.delete(session.path).status_code == 200
