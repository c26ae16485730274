"""Each ``%boxrun`` line magic in a plain ``python3`` kernel, against a real server."""

from __future__ import annotations

from pathlib import Path

from ..servers import ServerProcess
from .conftest import Driver, status, text


def test_help_and_usage_mistakes(kernel: Driver) -> None:
    kernel.run("%boxrun?")
    page = kernel.reply["payload"][0]["data"]["text/plain"]
    for command in ("ls", "create", "exec", "upload", "download", "images", "build", "monitor",
                    "use", "%%boxrun"):
        assert command in page
    for line, problem in (("frob", "invalid choice: 'frob'"),
                          ("create", "required: IMAGE"),
                          ("create python --cpu lots", "invalid int value: 'lots'"),
                          ("create python --volume nocolon", "is not HOST:GUEST[:ro]"),
                          ("exec", "give the command after --"),
                          ("stop", "no current box"),
                          ('exec -- "unclosed', "No closing quotation")):
        out = kernel.run(f"%boxrun {line}")
        assert not [m for m in out if m["msg_type"] == "error"], line
        assert "usage" in text(out, "stderr") or "error:" in text(out, "stderr")
        assert problem in text(out, "stderr"), (line, text(out))


def test_box_life_exec_and_files(kernel: Driver, magics_server: ServerProcess,
                                 work_dir: Path) -> None:
    created = kernel.run("%boxrun create python --name life --cpu 1 --memory 256 "
                         "--env GREETING=hi")
    assert "box life" in text(created) and "is running" in text(created)
    bars = [m for m in created if m["msg_type"] == "display_data"]
    assert "application/vnd.jupyter.widget-view+json" in bars[0]["content"]["data"]
    assert "creating a box of python" in bars[0]["content"]["data"]["text/plain"]
    listed = text(kernel.run("%boxrun ls"))
    assert "* life" in listed and "running" in listed and "local/python" in listed

    ran = kernel.run("%boxrun exec -- sh -c 'echo $GREETING; echo oops >&2; exit 3'")
    assert text(ran, "stdout") == "hi\n"
    assert text(ran, "stderr") == "oops\nexit code 3\n"

    (work_dir / "up.txt").write_text("payload")
    up = text(kernel.run(f"%boxrun upload {work_dir / 'up.txt'} /root/in.txt"))
    assert "uploaded" in up and "life:/root/in.txt" in up
    assert text(kernel.run("%boxrun exec -b life -- cat /root/in.txt"), "stdout") == "payload"
    kernel.run(f"%boxrun download /root/in.txt {work_dir / 'back.txt'}")
    assert (work_dir / "back.txt").read_text() == "payload"
    missing = text(kernel.run("%boxrun download /root/nope.txt"), "stderr")
    assert missing.startswith("BoxRun: ") and "nope.txt" in missing

    assert "is stopped" in text(kernel.run("%boxrun stop"))
    assert status(magics_server, "life") == "stopped"
    refused = text(kernel.run("%boxrun exec -- true"), "stderr")
    assert refused.startswith("BoxRun: ") and "Traceback" not in refused
    assert "is running" in text(kernel.run("%boxrun start life"))
    busy = text(kernel.run("%boxrun rm"), "stderr")
    assert busy.startswith("BoxRun: ") and "running" in busy
    assert "box life removed" in text(kernel.run("%boxrun rm --force"))
    assert status(magics_server, "life") is None
    assert "no boxes" in text(kernel.run("%boxrun ls")) or "life" not in text(
        kernel.run("%boxrun ls"))


def test_server_errors_in_words(kernel: Driver) -> None:
    unknown = text(kernel.run("%boxrun create nosuch/image --name x1"), "stderr")
    assert unknown.startswith("BoxRun: cannot pull 'nosuch/image'")
    gone = text(kernel.run("%boxrun info nosuchbox"), "stderr")
    assert gone == "BoxRun: no box with id or name 'nosuchbox'\n"


def test_images_use_and_info(kernel: Driver) -> None:
    images = text(kernel.run("%boxrun images"))
    assert "debian" in images and "local/python" in images
    assert "already built" in text(kernel.run("%boxrun build python"))
    kernel.run("%boxrun create debian --name seen --cpu 1 --memory 128")
    kernel.run("%boxrun exec -b seen -- sh -c 'exit 4'")
    kernel.run("%boxrun create debian --name other --cpu 1 --memory 128")
    used = text(kernel.run("%boxrun use seen"))
    assert "box seen is the current box" in used
    assert "* seen" in text(kernel.run("%boxrun ls"))
    shown = kernel.run("%boxrun info")
    view = next(m for m in shown if m["msg_type"] == "display_data")["content"]["data"]
    assert "application/vnd.jupyter.widget-view+json" in view
    # The execs table arrives once the widget has loaded the box's activity.
    kernel.wait(lambda: any("sh -c exit 4" in str(s.get("value", ""))
                            and "failed" in str(s.get("value", ""))
                            for s in kernel.models.values()), what="the execs of box seen")
    summary = text(kernel.run("from boxrun_kernel.widgets import BoxInfo\n"
                              "w = BoxInfo('seen'); import time; time.sleep(1); print(repr(w.summary()))"))
    assert "seen" in summary and "Recent execs" in summary
    for name in ("seen", "other"):
        kernel.run(f"%boxrun rm {name} --force")


def test_use_calls_the_kernels_hook(kernel: Driver) -> None:
    """A kernel with ``use_box`` (the BoxRun kernel) is told to move to the box."""
    kernel.run("%boxrun create debian --name moved --cpu 1 --memory 128")
    kernel.run("get_ipython().kernel.use_box = lambda name: print('kernel moves to', name)")
    used = text(kernel.run("%boxrun use moved"))
    assert used == "kernel moves to moved\nbox moved is the current box; the next cells run there\n"
    kernel.run("del get_ipython().kernel.use_box")
    kernel.run("%boxrun rm --force moved")
