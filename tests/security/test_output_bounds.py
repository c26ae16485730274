"""What a box's output can make the server store, hold or compute is bounded: the
stored-output cap of execs and sessions (`truncated`), linear reading of huge messages
from a box, and a server that keeps answering meanwhile."""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from pathlib import Path

import httpx

from ..servers import ServerProcess
from .conftest import (
    SMALL_CAP,
    Session,
    cell_done,
    db_bytes,
    exec_events,
    make_box,
    run_exec,
    sse,
    wal_bytes,
)

MiB = 1 << 20
#: Stored beyond the cap: the truncated and exit events, rows, B-tree pages; for a session
#: also the 1 MiB of small messages kept past the cap (replies, status).
SLACK = 2 * MiB
#: The write-ahead log's most (SQLite checkpoints it at 1000 pages and reuses it).
WAL_MOST = 8 * MiB


def stored_output(events: list[tuple[str, dict]]) -> int:
    return sum(len(data["data"].encode()) for name, data in events if name == "log")


def test_300_mb_from_an_exec_grows_the_database_by_the_cap(new_server: ServerProcess) -> None:
    cap = 16 * MiB
    server = new_server.start("--max-output-bytes", str(cap))
    with server.http() as http:
        box = make_box(http)
        before = db_bytes(server)
        started = time.monotonic()
        ex, events = run_exec(http, box, "head -c 300M /dev/zero | tr '\\0' a; echo done >&2")
        took = time.monotonic() - started
        grown = db_bytes(server) - before
    assert ex["status"] == "succeeded" and ex["exit_code"] == 0, ex
    assert grown <= cap + SLACK, f"the database grew by {grown} bytes for a cap of {cap}"
    assert wal_bytes(server) <= WAL_MOST
    assert stored_output(events) == cap
    names = [name for name, _ in events]
    assert names.count("truncated") == 1 and names[-1] == "exit"
    (notice,) = [json.loads(data["data"]) for name, data in events if name == "truncated"]
    assert notice == {"stored_bytes": cap, "max_output_bytes": cap}
    assert took < 45, f"300 MB of output took {took:.1f} s"


def test_live_subscribers_see_all_the_output_the_store_keeps_the_cap(
        capped: ServerProcess, http: httpx.Client) -> None:
    box = make_box(http)
    total = 3 * SMALL_CAP + 12345
    resp = http.post(f"/v1/boxes/{box}/exec", json={
        "cmd": ["sh", "-c", f"sleep 1; head -c {total} /dev/zero | tr '\\0' b; echo tail"]})
    exec_id = resp.json()["id"]
    with http.stream("GET", f"/v1/boxes/{box}/exec/{exec_id}/events") as live:
        events = list(sse(live))
    seen = "".join(data["data"] for name, data in events if name == "log")
    assert seen == "b" * total + "tail\n"  # live: everything, in order
    assert [name for name, _ in events].count("truncated") == 1
    stored = exec_events(http, box, exec_id)
    assert stored_output(stored) == SMALL_CAP
    assert [name for name, _ in stored][-2:] == ["truncated", "exit"]
    seqs = [data["seq"] for _, data in stored]
    assert seqs == sorted(seqs) and stored[-1][1]["seq"] == events[-1][1]["seq"]


def test_an_exec_asked_to_stop_at_the_limit_is_stopped(capped: ServerProcess,
                                                        http: httpx.Client) -> None:
    box = make_box(http)
    ex, events = run_exec(http, box, "yes", on_output_limit="stop", timeout_ms=60_000)
    assert ex["status"] == "failed", ex
    assert f"limit of {SMALL_CAP} bytes" in ex["error_message"]
    assert stored_output(events) == SMALL_CAP
    bad = http.post(f"/v1/boxes/{box}/exec", json={"cmd": ["true"], "on_output_limit": "x"})
    assert bad.status_code == 422 and "on_output_limit" in bad.json()["message"], bad.text


def test_a_cell_printing_more_than_the_cap(capped: ServerProcess, http: httpx.Client) -> None:
    box = make_box(http, "python")
    session = Session(http, box, "ipykernel")
    before = db_bytes(capped)
    events = session.execute(
        "import sys\nfor i in range(200):\n    sys.stdout.write(str(i % 10) * 65536)\n"
        "    sys.stdout.flush()\nprint('end')")
    grown = db_bytes(capped) - before
    live = "".join(e["content"]["text"] for e in events if e["msg_type"] == "stream")
    assert live == "".join(str(i % 10) * 65536 for i in range(200)) + "end\n"
    assert [e["content"]["status"] for e in events if e["msg_type"] == "execute_reply"] == ["ok"]
    assert grown <= SMALL_CAP + SLACK, f"the database grew by {grown} bytes"
    assert wal_bytes(capped) <= WAL_MOST
    stored = session.events(cell_done(session.last), after=-1)
    (notice,) = [e for e in stored if e["msg_type"] == "truncated"]
    assert notice["channel"] == "session" and notice["content"]["max_output_bytes"] == SMALL_CAP
    assert notice["content"]["stored_bytes"] <= SMALL_CAP
    kept = sum(len(e["content"]["text"]) for e in stored if e["msg_type"] == "stream")
    assert 0 < kept < SMALL_CAP
    # the session goes on; what it stores past the cap is its requests' state, not output
    assert [e["content"]["status"] for e in session.execute("print(1)")
            if e["msg_type"] == "execute_reply"] == ["ok"]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in ticks of 10 ms


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def _ahead(tid: int) -> None:
    """Schedule a thread (0: the caller) ahead of the host's other work where allowed: the
    probe measures the server's event loop, not how busy the machine's cores are (the
    box's kernel and agent serialize the 64 MB on them meanwhile, other tests too)."""
    with contextlib.suppress(PermissionError):
        os.setpriority(os.PRIO_PROCESS, tid, -10)


class InfoProbe(threading.Thread):
    """Times ``GET /v1/info`` every 10 ms until stopped."""

    def __init__(self, server: ServerProcess) -> None:
        super().__init__(daemon=True)
        self.server, self.times, self.halt = server, [], threading.Event()

    def run(self) -> None:
        _ahead(0)  # this thread
        with self.server.http() as http:
            while not self.halt.is_set():
                started = time.perf_counter()
                assert http.get("/v1/info").status_code == 200
                self.times.append(time.perf_counter() - started)
                time.sleep(0.01)

    def __enter__(self) -> InfoProbe:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.halt.set()
        self.join()


def test_a_64_mb_display_costs_linear_time_and_the_server_keeps_answering(
        capped: ServerProcess, http: httpx.Client) -> None:
    assert capped.proc is not None
    pid = capped.proc.pid
    _ahead(pid)  # the server's event loop thread
    box = make_box(http, "python", memory_mb=2048)
    session = Session(http, box, "ipykernel")
    events = session.execute("display({'text/plain': 'x' * 1_000_000}, raw=True)")
    (small,) = [e for e in events if e["msg_type"] == "display_data"]
    assert small["content"]["data"]["text/plain"] == "x" * 1_000_000  # under the limit: whole

    def display(mb: int) -> list[dict]:
        events = session.execute(f"display({{'text/plain': 'x' * {mb << 20}}}, raw=True)")
        assert not [e for e in events if e["msg_type"] == "display_data"]
        (note,) = [e for e in events if e["msg_type"] == "stream"]
        assert note["content"]["name"] == "stderr"
        size = re.search(r"dropped a display_data message of (\d+) bytes", note["content"]["text"])
        assert size and int(size[1]) > mb << 20, note
        return events

    rss_before = _peak_rss_mb(pid)
    cpu = {}
    for mb in (16, 64):  # the server's own cpu time, nothing else asking it anything
        started = _cpu_seconds(pid)
        display(mb)
        cpu[mb] = _cpu_seconds(pid) - started
    with InfoProbe(capped) as probe:
        display(64)
    rss_growth = _peak_rss_mb(pid) - rss_before
    times = sorted(probe.times)
    p95 = times[int(len(times) * 0.95)]
    print(f"server cpu: {cpu} s; /v1/info during 64 MB: {len(times)} calls, median "
          f"{times[len(times) // 2] * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, max "
          f"{times[-1] * 1000:.1f} ms; peak RSS growth {rss_growth:.0f} MB")
    assert cpu[64] < 4 * cpu[16] * 1.5 + 0.2, cpu  # linear (the old reading: quadratic)
    assert cpu[64] < 2, cpu
    assert len(times) > 20
    # The server's own time for each answer stays under 10 ms in its log; on a loaded
    # 2-core host some wait for a core (p95 60 ms, max 0.26 s at a load of 10). A loop
    # blocked by the message, the attack, holds the answers for seconds.
    assert p95 < 0.1 and times[-1] < 0.5, times[-5:]
    assert rss_growth < 40, f"the server's peak RSS grew by {rss_growth:.0f} MB"


def test_a_subscriber_that_does_not_read_holds_no_output_in_the_server(
        capped: ServerProcess, http: httpx.Client) -> None:
    """Big messages published while an SSE client reads nothing: its queue lags at 64 MiB
    instead of holding them all (and the store holds the cap)."""
    assert capped.proc is not None
    pid = capped.proc.pid
    box = make_box(http, "python", memory_mb=2048)
    session = Session(http, box, "ipykernel")
    rss_before = _peak_rss_mb(pid)
    with capped.http() as idle, idle.stream("GET", session.path + "/events",
                                            headers={"Last-Event-ID": "-1"}) as stalled:
        assert stalled.status_code == 200
        events = session.execute("for i in range(40): display({'text/plain': 'x' * 7_000_000},"
                                 " raw=True)")
    assert [e["content"]["status"] for e in events if e["msg_type"] == "execute_reply"] == ["ok"]
    rss_growth = _peak_rss_mb(pid) - rss_before
    print(f"peak RSS growth with a stalled subscriber: {rss_growth:.0f} MB")
    assert rss_growth < 220, f"the server's peak RSS grew by {rss_growth:.0f} MB (of 280)"
