"""Interpreter sessions against a real server: ipykernel, python and shell kinds."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from websockets.asyncio.client import connect, unix_connect
from websockets.exceptions import InvalidStatus

from ..servers import ServerProcess
from .test_http import error, sse

SESSION_KEYS = {"id", "box_id", "kind", "status", "cwd", "created_at", "ended_at",
                "error_message"}


class Session:
    """A session under test: sends messages and follows its events from a cursor."""

    def __init__(self, http: httpx.Client, box_id: str, body: dict) -> None:
        self.http, self.box_id, self.id = http, box_id, body["id"]
        self.path = f"/v1/boxes/{box_id}/sessions/{self.id}"
        self.seen = -1

    def send(self, msg_type: str, content: dict, channel: str = "shell") -> str:
        resp = self.http.post(self.path + "/messages", json={
            "channel": channel, "msg_type": msg_type, "content": content})
        assert resp.status_code == 202, resp.text
        return resp.json()["msg_id"]

    def events(self, until: Callable[[dict], bool], after: int | None = None,
               timeout: float = 60, within: float | None = None) -> list[dict]:
        """Events after the cursor up to the first ``until`` accepts (moves the cursor);
        TimeoutError if that takes over ``within`` s (keep-alives included)."""
        start = self.seen if after is None else after
        deadline = time.monotonic() + within if within is not None else None
        headers = {"Last-Event-ID": str(start)}
        got: list[dict] = []
        with self.http.stream("GET", self.path + "/events", headers=headers,
                              timeout=timeout) as resp:
            assert resp.status_code == 200, resp.read()
            for line in resp.iter_lines():
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"no such event in {within} s after {start}: {got[-5:]}")
                if line.startswith("data: "):
                    event = json.loads(line[6:])
                    got.append(event)
                    self.seen = max(self.seen, event["seq"])
                    if until(event):
                        return got
        return got

    def request(self, msg_type: str, content: dict, channel: str = "shell") -> list[dict]:
        """Send a request; its events up to both its reply and the idle status for it
        (they come on different sockets, in either order)."""
        msg_id = self.send(msg_type, content, channel)
        return [e for e in self.events(_done(msg_id)) if e["parent_msg_id"] == msg_id]

    def execute(self, code: str, **content) -> list[dict]:
        return self.request("execute_request", {"code": code, "silent": False,
                                                "allow_stdin": True, **content})


def _done(parent: str) -> Callable[[dict], bool]:
    seen: set[str] = set()

    def until(event: dict) -> bool:
        if event["parent_msg_id"] == parent and event["channel"] == "shell":
            seen.add("reply")
        if _idle(event, parent):
            seen.add("idle")
        return len(seen) == 2
    return until


def _idle(event: dict, parent: str) -> bool:
    return (event["msg_type"] == "status" and event["parent_msg_id"] == parent
            and event["content"]["execution_state"] == "idle")


#: Kills (SIGKILL) the box's processes whose command line holds argv[1], but itself;
#: prints their pids.
KILL = ("import os, signal, sys\n"
        "for p in filter(str.isdigit, os.listdir('/proc')):\n"
        "    try:\n"
        "        found = sys.argv[1].encode() in open(f'/proc/{p}/cmdline', 'rb').read()\n"
        "        if found and int(p) != os.getpid():\n"
        "            os.kill(int(p), signal.SIGKILL)\n"
        "            print(p)\n"
        "    except OSError:\n"
        "        pass\n")
#: What only the command line of a session's relay holds (its code).
RELAY_MARK = "boxrun relay"


def kill_in_box(http: httpx.Client, box_id: str, marker: str) -> list[str]:
    """Kill the box's processes whose command line holds ``marker``; their pids."""
    ex = http.post(f"/v1/boxes/{box_id}/exec", json={"cmd": ["python3", "-c", KILL, marker]})
    assert ex.status_code == 201, ex.text
    events = sse(http.get(f"/v1/boxes/{box_id}/exec/{ex.json()['id']}/events").text)
    return "".join(e["data"]["data"] for e in events if e["data"]["stream"] == "stdout").split()


def of(events: list[dict], msg_type: str) -> list[dict]:
    return [e for e in events if e["msg_type"] == msg_type]


def reply(events: list[dict]) -> dict:
    (found,) = [e for e in events if e["channel"] == "shell"]
    return found["content"]


def stdout(events: list[dict]) -> str:
    return "".join(e["content"]["text"] for e in of(events, "stream")
                   if e["content"]["name"] == "stdout")


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.http() as client:
        yield client


def make_box(http: httpx.Client, image: str, **extra) -> dict:
    resp = http.post("/v1/boxes", json={"image": image, "cpu": 1, "memory_mb": 512, **extra})
    assert resp.status_code == 201, resp.text
    return resp.json()


def start(http: httpx.Client, box: dict, kind: str) -> tuple[Session, dict]:
    resp = http.post(f"/v1/boxes/{box['id']}/sessions", json={"kind": kind})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert set(body) == SESSION_KEYS and body["status"] == "idle", body
    return Session(http, box["id"], body), body


@pytest.fixture(scope="module")
def python_box(http: httpx.Client) -> Iterator[dict]:
    box = make_box(http, "python")
    yield box
    http.delete(f"/v1/boxes/{box['id']}", params={"force": "true"})


@pytest.fixture(scope="module", params=["ipykernel", "python"])
def sess(request: pytest.FixtureRequest, http: httpx.Client, python_box: dict) -> Session:
    session, body = start(http, python_box, request.param)
    assert body["kind"] == request.param
    session.kind = request.param  # type: ignore[attr-defined]
    return session


def test_auto_kind_and_objects(http: httpx.Client, python_box: dict) -> None:
    session, body = start(http, python_box, "auto")
    assert body["kind"] == "ipykernel" and body["cwd"] == "/root"
    ready = session.events(lambda e: e["msg_type"] == "ready")
    assert ready[-1]["channel"] == "session"
    assert ready[-1]["metadata"]["kernel_info"]["language_info"]["name"] == "python"
    assert http.get(session.path).json()["id"] == session.id
    assert session.id in [s["id"] for s in http.get(f"/v1/boxes/{python_box['id']}/sessions").json()]
    assert http.delete(session.path).json() == {"ok": True}
    error(http.get(session.path), 404, "SESSION_NOT_FOUND")
    error(http.post(f"/v1/boxes/{python_box['id']}/sessions", json={"kind": "perl"}),
          422, "VALIDATION_ERROR")


def test_execute_result_and_count(sess: Session) -> None:
    first = reply(sess.execute("x = 1"))
    events = sess.execute("x + 1")
    (result,) = of(events, "execute_result")
    assert result["content"]["data"]["text/plain"] == "2"
    assert result["content"]["execution_count"] == first["execution_count"] + 1
    assert reply(events)["status"] == "ok"
    assert [e["content"]["execution_state"] for e in of(events, "status")] == ["busy", "idle"]


def test_streams_and_errors(sess: Session) -> None:
    events = sess.execute("import sys\nfor i in range(3): print(i)\nprint('e', file=sys.stderr)")
    assert stdout(events) == "0\n1\n2\n"
    events = sess.execute("a = 1\n1 / 0")
    (err,) = of(events, "error")
    assert err["content"]["ename"] == "ZeroDivisionError"
    assert "1 / 0" in re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(err["content"]["traceback"]))
    assert reply(events)["status"] == "error"


def test_display_and_input(sess: Session) -> None:
    events = sess.execute("class H:\n def _repr_html_(self): return '<b>h</b>'\ndisplay(H())"
                          if sess.kind == "python" else
                          "from IPython.display import HTML, display\ndisplay(HTML('<b>h</b>'))")
    assert of(events, "display_data")[0]["content"]["data"]["text/html"] == "<b>h</b>"
    msg_id = sess.send("execute_request", {"code": "name = input('who? ')\nname * 2",
                                           "allow_stdin": True})
    (req,) = [e for e in sess.events(lambda e: e["msg_type"] == "input_request")
              if e["channel"] == "stdin"]
    assert req["content"]["prompt"] == "who? " and req["parent_msg_id"] == msg_id
    sess.send("input_reply", {"value": "ab"}, channel="stdin")
    events = sess.events(_done(msg_id))
    assert of(events, "execute_result")[0]["content"]["data"]["text/plain"] == "'abab'"


def test_complete_inspect_is_complete(sess: Session) -> None:
    sess.execute("import os\nmy_long_variable = 3")
    content = reply(sess.request("complete_request", {"code": "my_long_v", "cursor_pos": 9}))
    assert "my_long_variable" in content["matches"] and content["cursor_start"] == 0
    content = reply(sess.request("inspect_request", {"code": "os.path.join", "cursor_pos": 12,
                                                     "detail_level": 0}))
    assert content["found"] and "join" in content["data"]["text/plain"]
    assert reply(sess.request("is_complete_request", {"code": "for i in x:"}))["status"] == "incomplete"
    assert reply(sess.request("is_complete_request", {"code": "x = 1"}))["status"] == "complete"


def test_interrupt_and_restart(http: httpx.Client, sess: Session) -> None:
    sess.execute("kept = 42")
    msg_id = sess.send("execute_request", {"code": "while True: pass"})
    sess.events(lambda e: e["msg_type"] == "status" and e["parent_msg_id"] == msg_id)
    time.sleep(0.3)
    assert http.get(sess.path).json()["status"] == "busy"
    assert http.post(sess.path + ":interrupt").status_code == 200
    events = sess.events(_done(msg_id))
    assert reply([e for e in events if e["parent_msg_id"] == msg_id])["ename"] == "KeyboardInterrupt"
    assert of(sess.execute("kept"), "execute_result")[0]["content"]["data"]["text/plain"] == "42"
    resp = http.post(sess.path + ":restart")
    assert resp.status_code == 200 and resp.json()["status"] == "idle", resp.text
    assert sess.events(lambda e: e["msg_type"] == "restarted")[-1]["channel"] == "session"
    assert of(sess.execute("kept"), "error")[0]["content"]["ename"] == "NameError"


def test_widget_comm(sess: Session) -> None:
    if sess.kind != "ipykernel":
        pytest.skip("comms need ipykernel")
    events = sess.execute("from ipywidgets import IntSlider\nIntSlider()")
    opens = of(events, "comm_open")
    assert opens and any(o["content"]["target_name"] == "jupyter.widget" for o in opens)
    (result,) = of(events, "execute_result")
    assert "application/vnd.jupyter.widget-view+json" in result["content"]["data"]


def test_replay(sess: Session) -> None:
    msg_id = sess.send("execute_request", {"code": "print('again')"})
    live = sess.events(_done(msg_id))
    replayed = sess.events(_done(msg_id), after=live[0]["seq"] - 1)
    assert replayed == live


def test_relay_killed_reattaches(http: httpx.Client, sess: Session) -> None:
    """The relay to the interpreter dies in the box: the server attaches again, variables
    are intact, and a cell running across it loses no output (the agent kept it)."""
    sess.execute("x = 42")
    msg_id = sess.send("execute_request", {"code": "import time\ntime.sleep(1.5)\n"
                                                   "print('across')"})
    sess.events(lambda e: e["msg_type"] == "execute_input" and e["parent_msg_id"] == msg_id)
    killed = time.monotonic()
    assert kill_in_box(http, sess.box_id, RELAY_MARK), "no relay in the box"
    seen = sess.events(_done(msg_id))
    events = [e for e in seen if e["parent_msg_id"] == msg_id]
    assert stdout(events) == "across\n" and reply(events)["status"] == "ok", seen[-1]
    events = sess.execute("x")
    assert of(events, "execute_result")[0]["content"]["data"]["text/plain"] == "42"
    print(f"relay killed → next cell's result: {time.monotonic() - killed:.2f} s")
    again = sess.events(lambda e: e["msg_type"] == "reattached", after=-1)[-1]
    assert again["channel"] == "session" and again["content"]["status"] != "dead"
    assert http.get(sess.path).json()["status"] == "idle"


@pytest.mark.parametrize("kind", ["python", "ipykernel"])
def test_interpreter_gone_is_dead(http: httpx.Client, python_box: dict, kind: str) -> None:
    """The agent itself killed (nothing listens on its socket any more): ``dead``, said so."""
    session, _ = start(http, python_box, kind)
    assert kill_in_box(http, python_box["id"], f"/sessions/{session.id}/")  # agent, relay
    dead = session.events(lambda e: e["msg_type"] == "dead")[-1]
    assert "nothing listens on its socket" in dead["content"]["error_message"]
    error(http.post(session.path + "/messages", json={
        "channel": "shell", "msg_type": "execute_request", "content": {"code": "1"}}),
        400, "SESSION_DEAD")


def test_shell_kind(http: httpx.Client) -> None:
    box = make_box(http, "debian")
    try:
        session, body = start(http, box, "auto")
        assert body["kind"] == "shell"
        ready = session.events(lambda e: e["msg_type"] == "ready")[-1]
        assert "shell scripts" in ready["metadata"]["kernel_info"]["banner"]
        events = session.execute("X=5; echo $X\ncd /tmp\necho oops >&2")
        assert stdout(events) == "5\n" and reply(events)["status"] == "ok"
        assert of(events, "stream")[-1]["content"] == {"name": "stderr", "text": "oops\n"}
        assert stdout(session.execute("pwd; printf 'no newline'")) == "/tmp\nno newline"
        assert reply(session.execute("false"))["evalue"] == "1"
        msg_id = session.send("execute_request", {"code": "sleep 30"})
        session.events(lambda e: e["msg_type"] == "execute_input")
        assert http.post(session.path + ":interrupt").status_code == 200
        events = session.events(_done(msg_id), timeout=10)
        assert reply([e for e in events if e["channel"] == "shell"])["status"] == "error"
        assert http.post(session.path + ":restart").json()["status"] == "idle"
        assert stdout(session.execute("echo ${X:-unset}; pwd")) == "unset\n/root\n"
    finally:
        http.delete(f"/v1/boxes/{box['id']}", params={"force": "true"})


def test_box_stop_kills_sessions(http: httpx.Client) -> None:
    box = make_box(http, "python")
    try:
        session, _ = start(http, box, "python")
        assert http.post(f"/v1/boxes/{box['id']}:stop").status_code == 200
        dead = session.events(lambda e: e["msg_type"] == "dead")[-1]
        assert dead["content"]["error_message"] == "the box was stopped"
        body = http.get(session.path).json()
        assert body["status"] == "dead" and body["ended_at"]
        error(http.post(session.path + "/messages", json={
            "channel": "shell", "msg_type": "execute_request", "content": {"code": "1"}}),
            400, "SESSION_DEAD")
        error(http.post(f"/v1/boxes/{box['id']}/sessions", json={}), 400, "BOX_NOT_RUNNING")
    finally:
        http.delete(f"/v1/boxes/{box['id']}", params={"force": "true"})


def test_out_of_memory(http: httpx.Client) -> None:
    if http.get("/v1/info").json().get("limits") in (None, "none", "rlimits"):
        pytest.skip("memory limits are not enforced by this backend on this host")
    box = make_box(http, "python", memory_mb=256)
    try:
        session, _ = start(http, box, "ipykernel")
        session.send("execute_request", {"code": "hog = [bytearray(1 << 20) for _ in range(4096)]"})
        dead = session.events(lambda e: e["msg_type"] == "dead", timeout=120)[-1]
        assert "out of memory" in dead["content"]["error_message"]
    finally:
        http.delete(f"/v1/boxes/{box['id']}", params={"force": "true"})


def test_server_restart_reattaches_sessions(new_server: ServerProcess) -> None:
    """The server stops (SIGTERM, then SIGKILL) and starts again: the box runs on, its
    ``python`` session is re-attached with its variables (event numbers going on past what
    the last server may have published), its ``shell`` session (an exec of the server's)
    is dead, saying why."""
    new_server.env["BOXRUN_STOP_BOXES"] = "0"  # boxes outlive the server
    new_server.start()
    with new_server.http() as http:
        box = make_box(http, "python")
        interp, _ = start(http, box, "python")
        shell, _ = start(http, box, "shell")
        interp.execute("x = 42")
    for sig, why in ((signal.SIGTERM, "the server shut down"),
                     (signal.SIGKILL, "the server restarted")):
        last = interp.seen
        new_server.kill(sig)
        new_server.start()
        with new_server.http() as http:
            interp.http = shell.http = http
            assert http.get(f"/v1/boxes/{box['id']}").json()["status"] == "running"
            try:
                again = interp.events(lambda e: e["msg_type"] == "reattached", within=90)[-1]
            except TimeoutError as exc:
                raise AssertionError(f"{exc}; the server's log ends:\n"
                                     f"{new_server.log.read_text()[-4000:]}") from None
            assert again["seq"] > last + 1_000_000 - 100 and again["channel"] == "session"
            events = interp.execute("x")
            assert of(events, "execute_result")[0]["content"]["data"]["text/plain"] == "42"
            body = http.get(shell.path).json()
            if sig == signal.SIGTERM:
                assert body["status"] == "dead" and body["error_message"] == why, body
    with new_server.http() as http:
        http.delete(f"/v1/boxes/{box['id']}", params={"force": "true"})


async def test_channel_both_ways(server: ServerProcess, http: httpx.Client,
                                 python_box: dict) -> None:
    """The WebSocket channel: messages in, events out with the cell's usage, a refused
    message answered in the API's words, and a resumed channel replaying from ``after``,
    over the socket and over TCP with the token."""
    session, _ = start(http, python_box, "ipykernel")
    path = f"{session.path}/channel"
    error(http.get(path, params={"after": "soon"}), 422, "VALIDATION_ERROR")
    error(http.get(f"/v1/boxes/{python_box['id']}/sessions/sess_nosuchone/channel"), 404,
          "SESSION_NOT_FOUND")
    async with unix_connect(server.socket, f"ws://boxrun{path}") as ws:
        await ws.send(json.dumps({"channel": "shell", "msg_type": "execute_request",
                                  "msg_id": "cell-1", "content": {"code": "6 * 7"}}))
        await ws.send(json.dumps({"channel": "nowhere", "msg_type": "x", "msg_id": "bad-1"}))
        events: list[dict] = []
        refused: list[dict] = []
        finished = _done("cell-1")
        complete = False
        async for frame in ws:
            data = json.loads(frame)
            if data.get("type") == "error":
                refused.append(data)
            else:
                events.append(data)
                complete = complete or finished(data)
            if complete and refused:
                break
    assert refused == [{"type": "error", "code": "VALIDATION_ERROR", "msg_id": "bad-1",
                        "message": refused[0]["message"]}]
    result = next(e for e in events if e["msg_type"] == "execute_result")
    assert result["content"]["data"]["text/plain"] == "42"
    (done,) = [e for e in events if e["msg_type"] == "execute_reply"]
    usage = done["metadata"]["boxrun_usage"]
    assert usage["wall_time_s"] >= 0 and usage["peak_memory_bytes"] > 0
    assert usage["cpu_time_s"] is not None
    url = f"ws://127.0.0.1:{server.port}{path}?after={result['seq'] - 1}"
    async with connect(url, additional_headers={"Authorization": f"token {server.token}"}) as ws:
        again = json.loads(await ws.recv())
    assert again == result
    with pytest.raises(InvalidStatus):
        async with connect(url):
            pass
