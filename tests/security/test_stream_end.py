"""A finished exec's or session's stream, resumed at or past its last event, ends at once
with 204 (what stops a browser's EventSource from reconnecting) instead of being held
open with keep-alives."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from websockets.asyncio.client import unix_connect

from ..servers import ServerProcess
from .conftest import Session, exec_events, make_box, run_exec, sse


@pytest.fixture
def served(server: ServerProcess) -> httpx.Client:
    with server.http() as client:
        yield client


def resume(http: httpx.Client, path: str, last: int) -> tuple[int, list, float]:
    """Status, events and seconds of ``GET path`` with ``Last-Event-ID: last``."""
    started = time.monotonic()
    with http.stream("GET", path, headers={"Last-Event-ID": str(last)}, timeout=5) as resp:
        if resp.status_code == 200:
            events = []
            for event in sse(resp, keepalives=True):
                assert time.monotonic() - started < 3, "held open"
                if event is not None:
                    events.append(event)
        else:
            events, body = [], resp.read()
            assert (resp.status_code, body) == (204, b"")
    took = time.monotonic() - started
    return resp.status_code, events, took


def test_a_finished_exec_resumed_at_its_exit_ends_at_once(served: httpx.Client) -> None:
    box = make_box(served)
    try:
        ex, events = run_exec(served, box, "echo one; echo two >&2")
        assert [name for name, _ in events][-1] == "exit"
        last = events[-1][1]["seq"]
        path = f"/v1/boxes/{box}/exec/{ex['id']}/events"
        for after in (last, last + 100):
            status, got, took = resume(served, path, after)
            assert (status, got) == (204, []) and took < 1, (after, status, took)
        status, got, took = resume(served, path, last - 1)  # one left: it, then the end
        assert status == 200 and [name for name, _ in got] == ["exit"] and took < 1
        assert exec_events(served, box, ex["id"]) == events  # from the start: everything
    finally:
        served.delete(f"/v1/boxes/{box}", params={"force": "true"})


async def _channel(server: ServerProcess, path: str, after: int) -> tuple[list[dict], float]:
    """The frames of a session's channel from ``?after=``, until the server closes it."""
    started = time.monotonic()
    async with unix_connect(server.socket, f"ws://boxrun{path}/channel?after={after}") as ws:
        frames = [json.loads(frame) async for frame in ws]
    return frames, time.monotonic() - started


def test_a_dead_session_resumed_at_its_end_ends_at_once(server: ServerProcess,
                                                        served: httpx.Client) -> None:
    box = make_box(served)
    try:
        session = Session(served, box, "shell")
        session.execute("echo hi")
        assert served.delete(f"/v1/boxes/{box}/sessions/{session.id}").status_code == 200
        # deleted sessions are gone; a session dies with its box and stays listed
        session = Session(served, box, "shell")
        session.execute("echo hi")
        assert served.post(f"/v1/boxes/{box}:stop").status_code == 200
        path = session.path + "/events"
        with served.stream("GET", path, headers={"Last-Event-ID": "-1"}) as resp:
            events = [data for _, data in sse(resp)]
        assert events[-1]["msg_type"] == "dead"
        last = events[-1]["seq"]
        for after in (last, last + 7):
            status, got, took = resume(served, path, after)
            assert (status, got) == (204, []) and took < 1, (after, status, took)
        status, got, _ = resume(served, path, last - 1)
        assert status == 200 and [data["msg_type"] for _, data in got] == ["dead"]
        # the WebSocket channel closes at once too
        frames, took = asyncio.run(asyncio.wait_for(_channel(server, session.path, last), 5))
        assert frames == [] and took < 1, took
    finally:
        served.delete(f"/v1/boxes/{box}", params={"force": "true"})


def test_a_running_exec_resumed_past_its_output_waits_for_it(served: httpx.Client) -> None:
    """Only a finished stream ends early: a running exec's resume gets what comes."""
    box = make_box(served)
    try:
        resp = served.post(f"/v1/boxes/{box}/exec", json={"cmd": ["sh", "-c", "sleep 1.5; echo late"]})
        ex = resp.json()
        events = exec_events(served, box, ex["id"], after=-1)
        assert [name for name, _ in events] == ["log", "exit"]
        assert events[0][1]["data"] == "late\n"
    finally:
        served.delete(f"/v1/boxes/{box}", params={"force": "true"})
