"""How the box's ipykernel (and the BoxRun kernel) start: a flush with nothing to send
does not wait for the IOPub thread, output keeps its order, and the agent relays a real
kernel's cell (run here as a process: the agent is stdlib only, as in a box)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import zmq
from ipykernel.iostream import IOPubThread, OutStream
from jupyter_client.session import Session

from jupyter_ext.sessions import agent_kernel
from jupyter_ext.sessions.agent_kernel import quick_flush, quick_iopub

from .agents import copy_agent, execute, reports


@contextmanager
def running(thread: IOPubThread) -> Iterator[IOPubThread]:
    """``thread`` started, and stopped after its loop's own tasks end (not at exit)."""
    thread.start()
    try:
        yield thread
    finally:
        done = threading.Event()
        thread.schedule(lambda: (*(t.cancel() for t in asyncio.all_tasks()),
                                 thread.io_loop.add_callback(done.set)))
        done.wait(5)
        thread.stop()
        thread.close()


@pytest.fixture
def iopub() -> Iterator[tuple[IOPubThread, zmq.Socket[bytes]]]:
    """A running IOPub thread publishing on an inproc socket, and a subscriber to it."""
    ctx = zmq.Context()
    pub, sub = ctx.socket(zmq.PUB), ctx.socket(zmq.SUB)
    pub.bind("inproc://iopub")
    sub.connect("inproc://iopub")
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    with running(IOPubThread(pub)) as thread:
        yield thread, sub
    sub.close(linger=0)
    ctx.term()


def stream(thread: IOPubThread, session: Session | None = None) -> OutStream:
    """An OutStream of a class of its own, made quick (ipykernel's own is left alone)."""
    quick = type("QuickOutStream", (OutStream,), {})
    quick_flush(quick)
    return quick(session or Session(), thread, "stdout", watchfd=False)


def flush_within(out: OutStream, seconds: float) -> bool:
    """Whether ``out.flush()`` returned within ``seconds``."""
    done = threading.Event()
    threading.Thread(target=lambda: (out.flush(), done.set()), daemon=True).start()
    return done.wait(seconds)


def test_a_flush_with_nothing_to_send_does_not_wait_for_the_iopub_thread(
        iopub: tuple[IOPubThread, Any]) -> None:
    thread, _ = iopub
    out = stream(thread)
    busy = threading.Event()
    thread.schedule(lambda: busy.wait(30))  # the IOPub thread is stuck until set
    try:
        assert flush_within(out, 2), "the flush waited for the IOPub thread"
        out.write("x")
        assert not flush_within(out, 0.5), "a flush with text to send did not wait"
    finally:
        busy.set()


def test_a_flush_while_the_iopub_thread_sends_waits_for_the_send(
        iopub: tuple[IOPubThread, Any]) -> None:
    thread, _ = iopub
    sending, release = threading.Event(), threading.Event()

    class Held(Session):
        def send(self, *args: Any, **kwargs: Any) -> Any:
            sending.set()
            release.wait(30)
            return super().send(*args, **kwargs)

    out = stream(thread, Held())
    out.write("x")
    thread.schedule(out._flush)  # the IOPub thread has taken the text, not yet sent it
    assert sending.wait(5)
    try:
        assert not flush_within(out, 0.5), "a flush did not wait for a send under way"
    finally:
        release.set()


def test_a_flush_after_a_write_sends_it_before_what_follows(
        iopub: tuple[IOPubThread, Any]) -> None:
    thread, sub = iopub
    session = Session()
    out = stream(thread, session)
    out.write("first")
    out.flush()
    out.flush()  # nothing more to send
    session.send(thread.background_socket, "status", {"execution_state": "idle"})
    got = []
    while len(got) < 2 and sub.poll(5000):
        _, frames = session.feed_identities(sub.recv_multipart())
        got.append(session.deserialize(frames))
    assert [(m["msg_type"], m["content"].get("text")) for m in got] == [
        ("stream", "first"), ("status", None)]


def cell(proc: subprocess.Popen[bytes], code: str, msg_id: str) -> list[dict[str, Any]]:
    """Run ``code``; its messages, up to both its reply and its ``idle``."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(execute(code, msg_id))
    proc.stdin.flush()
    said: list[dict[str, Any]] = []
    for line in proc.stdout:
        report = json.loads(line)
        if report.get("parent_msg_id") == msg_id:
            said.append(report)
        kinds = [(r["msg_type"], r["content"].get("execution_state")) for r in said]
        if ("execute_reply", None) in kinds and ("status", "idle") in kinds:
            return said
    raise AssertionError(f"the agent ended during the cell: {said}")


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The ``ipykernel`` agent on pipes, as the listening agent runs it."""
    proc = subprocess.Popen([sys.executable, "-u", str(copy_agent(tmp_path)), "ipykernel"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    yield proc
    proc.kill()
    proc.communicate()


def test_the_agents_kernel_runs_cells_in_order_without_subshells(
        agent: subprocess.Popen[bytes]) -> None:
    ready = reports(agent, '"type": "ready"')[-1]
    assert "kernel subshells" not in ready["kernel_info"].get("supported_features", [])
    for n in range(3):  # each cell's output, then its result, then idle
        said = cell(agent, f"import sys; print('a{n}', end=''); sys.stdout.flush(); "
                           f"print('b'); {n}", f"c{n}")
        kinds = [r["msg_type"] for r in said if r["msg_type"] in ("stream", "execute_result",
                                                                  "status")]
        text = "".join(r["content"]["text"] for r in said if r["msg_type"] == "stream")
        assert text == f"a{n}b\n"
        assert kinds[0] == "status" and kinds[-1] == "status"
        assert kinds.index("execute_result") > max(
            i for i, k in enumerate(kinds) if k == "stream")


def test_the_agent_says_when_its_kernel_dies_while_nothing_is_asked(
        agent: subprocess.Popen[bytes]) -> None:
    reports(agent, '"type": "ready"')
    cell(agent, "import os, threading, time\n"
                "threading.Thread(target=lambda: (time.sleep(0.5), os.kill(os.getpid(), 9)))"
                ".start()", "k")
    dead = reports(agent, '"type": "dead"')[-1]
    assert dead["reason"] == "killed (SIGKILL) — out of memory in the box?"


def test_the_main_threads_messages_leave_without_waking_the_iopub_thread(
        agent: subprocess.Popen[bytes]) -> None:
    reports(agent, '"type": "ready"')
    cell(agent, "import collections, threading\n"
                "_iopub = get_ipython().kernel.iopub_thread\n"
                "_sent, _send = collections.Counter(), type(_iopub)._really_send\n"
                "def _count(self, *args, **kwargs):\n"
                "    _sent[threading.current_thread().name] += 1\n"
                "    return _send(self, *args, **kwargs)\n"
                "type(_iopub)._really_send = _count", "patch")
    for n in range(10):
        cell(agent, f"{n}", f"c{n}")
    said = cell(agent, "dict(_sent)", "count")
    sent = next(r for r in said if r["msg_type"] == "execute_result")
    counts = eval(sent["content"]["data"]["text/plain"])  # a dict's repr, from our kernel
    # busy, input, result and idle of each cell (about 49 in all); some wait in the queue
    # when the IOPub thread holds the socket: a look for subscriptions (every 0.5 s) that
    # lands on a cell sends the rest of it from the queue (seen: 7 once in 25 runs)
    assert counts["MainThread"] >= 30 and counts.get("IOPub", 0) <= 15, counts


def test_output_of_threads_keeps_its_order_around_direct_sends(
        agent: subprocess.Popen[bytes]) -> None:
    reports(agent, '"type": "ready"')
    said = cell(agent, "import sys, threading\n"  # whole lines: print writes in parts
                       "t = threading.Thread(target=lambda: [sys.stdout.write(f't {i}\\n')"
                       " for i in range(300)])\n"
                       "t.start()\n"
                       "for i in range(300): sys.stdout.write(f'm {i}\\n')\n"
                       "t.join()\n"
                       "display('shown')\n"
                       "7", "threads")
    lines = "".join(r["content"]["text"] for r in said if r["msg_type"] == "stream").splitlines()
    assert sorted(lines) == sorted([f"t {i}" for i in range(300)] + [f"m {i}" for i in range(300)])
    assert [line for line in lines if line[0] == "m"] == [f"m {i}" for i in range(300)]
    kinds = [r["msg_type"] for r in said if r["msg_type"] != "stream"]
    assert kinds.index("display_data") < kinds.index("execute_result")
    last_stream = max(i for i, r in enumerate(said) if r["msg_type"] == "stream")
    assert last_stream < next(i for i, r in enumerate(said) if r["msg_type"] == "display_data")


def welcomed(session: Session, sub: zmq.Socket[bytes], within: float) -> bool:
    """Whether ``sub`` got an ``iopub_welcome`` within ``within`` seconds."""
    deadline = time.monotonic() + within
    while sub.poll(max(0, deadline - time.monotonic()) * 1000):
        _, frames = session.feed_identities(sub.recv_multipart())
        if session.deserialize(frames)["msg_type"] == "iopub_welcome":
            return True
    return False


def subscribe_while_sending(thread: IOPubThread, session: Session, sub: zmq.Socket[bytes],
                            port: int) -> None:
    """``sub`` subscribes while the IOPub thread is held up, unlocked, and the main thread
    sends: a direct send would read the socket's pending work, and with it the wake-up."""
    thread.io_loop.add_callback(time.sleep, 0.5)
    time.sleep(0.05)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(f"tcp://127.0.0.1:{port}")
    for _ in range(40):
        session.send(thread.background_socket, "status", {"execution_state": "busy"})
        time.sleep(0.01)


def test_subscriptions_are_read_around_direct_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first client's welcome comes as soon as the IOPub thread is free, long before
    a sweep: the main thread sends nothing itself before a first subscription was read.
    A later client's, whose wake-up a direct send took, comes with the next sweep (XPUB
    passes a topic's subscription on only when no one else has it: the first has left)."""
    monkeypatch.setattr(agent_kernel, "SUBSCRIPTION_SWEEP", 2.0)
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    first, later = ctx.socket(zmq.SUB), ctx.socket(zmq.SUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    quick = type("QuickIOPubThread", (IOPubThread,), {})
    quick_iopub(quick)
    session = Session()
    with running(quick(pub, session=session)) as thread:
        subscribe_while_sending(thread, session, first, port)
        first_welcomed = welcomed(session, first, 1.0)
        first.close(linger=0)  # gone: XPUB passes on a topic's first subscription only
        time.sleep(0.2)
        subscribe_while_sending(thread, session, later, port)
        later_welcomed = welcomed(session, later, 5.0)
    later.close(linger=0)
    ctx.term()
    assert first_welcomed and later_welcomed


def test_the_kernel_caches_its_pid_and_hides_the_preload(
        agent: subprocess.Popen[bytes]) -> None:
    reports(agent, '"type": "ready"')
    said = cell(agent, "import os, subprocess, sys\n"
                       "r, w = os.pipe()\n"
                       "child = os.fork()\n"
                       "if child == 0:\n"
                       "    os.write(w, f'{os.getpid()} {os.readlink(\"/proc/self\")}'.encode())\n"
                       "    os._exit(0)\n"
                       "os.waitpid(child, 0)\n"
                       "forked = os.read(r, 100).decode().split()\n"
                       "env = subprocess.run(['env'], capture_output=True, text=True).stdout\n"
                       "({'maps': 'pidcache.so' in open('/proc/self/maps').read(),\n"
                       "  'environ': 'LD_PRELOAD' in os.environ, 'children': 'LD_PRELOAD' in env,\n"
                       "  'forked': forked == [str(child)] * 2,\n"
                       "  'self': os.getpid() == int(os.readlink('/proc/self'))})", "pid")
    result = next(r for r in said if r["msg_type"] == "execute_result")
    assert eval(result["content"]["data"]["text/plain"]) == {
        "maps": True, "environ": False, "children": False, "forked": True, "self": True}


def test_an_iopub_thread_of_another_kind_is_left_as_it_is() -> None:
    def send_multipart(self: Any, *args: Any) -> None:
        raise AssertionError("not called")

    other = type("OtherIOPubThread", (), {"send_multipart": send_multipart})
    quick_iopub(other)
    assert other.send_multipart is send_multipart and "__init__" not in vars(other)
