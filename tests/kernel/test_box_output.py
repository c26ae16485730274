"""A box's active output (JavaScript, HTML, Markdown) reaches the frontend under the BoxRun
MIME type, never as a type JupyterLab would run in its own origin; inert output and widget
views as they are; ``--BoxRunKernel.trusted_output=True`` relays everything as it is."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking import BlockingKernelClient
from jupyter_client.manager import start_new_kernel

from boxrun_kernel.outputs import MIME_TYPE

TIMEOUT = 60
#: What JupyterLab's renderers would run (or put in the page unsanitized) if relayed.
ACTIVE = {"text/html", "text/markdown", "application/javascript", "text/javascript"}
TABLE = ('<div><style scoped>.dataframe tbody tr th {vertical-align: top;}</style>'
         '<table border="1" class="dataframe"><thead><tr><th></th><th>a</th></tr></thead>'
         '<tbody><tr><th>0</th><td>1</td></tr></tbody></table></div>')
ATTACK = "fetch('/api/contents/pwned.txt', {method: 'PUT'})"
SCRIPTED = f"<script>{ATTACK}</script><b>chart</b>"
HANDLER = f'<img src=x onerror="{ATTACK}">'
PAGE = {"source": "page", "data": {"text/html": f"<script>{ATTACK}</script>"}, "start": 0}
CELL = f"""
from IPython.display import HTML, Javascript, Markdown, display

class Frame:
    def _repr_html_(self):
        return {TABLE!r}

display(Javascript({ATTACK!r}))
display(HTML({SCRIPTED!r}))
display(Markdown({HANDLER!r}))
handle = display(HTML('<i>first</i>'), display_id=True)
handle.update(Javascript({ATTACK!r}))
get_ipython().payload_manager.write_payload({PAGE!r})
Frame()
"""


def start(kernel_env: dict[str, str], notebook_dir: Path, *args: str
          ) -> tuple[Any, BlockingKernelClient]:
    return start_new_kernel(kernel_name="boxrun", env=kernel_env, cwd=str(notebook_dir),
                            startup_timeout=120, extra_arguments=list(args))


def run(kc: BlockingKernelClient, code: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The reply content of ``code`` and its iopub messages."""
    messages: list[dict[str, Any]] = []
    reply = kc.execute_interactive(code, timeout=TIMEOUT, output_hook=messages.append)
    return reply["content"], messages


def bundles(messages: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(m["msg_type"], m["content"]["data"]) for m in messages
            if m["msg_type"] in ("display_data", "update_display_data", "execute_result")]


@pytest.fixture(scope="class")
def kernel(kernel_env: dict[str, str], notebook_dir: Path) -> Iterator[BlockingKernelClient]:
    km, kc = start(kernel_env, notebook_dir)
    yield kc
    kc.stop_channels()
    km.shutdown_kernel()


class TestConfinedOutput:
    def test_active_output_arrives_under_the_boxrun_type(self, kernel: BlockingKernelClient
                                                          ) -> None:
        reply, messages = run(kernel, CELL)
        assert reply["status"] == "ok", reply
        shown = bundles(messages)
        assert [kind for kind, _ in shown] == ["display_data"] * 4 + [
            "update_display_data", "execute_result"]
        for _, data in shown:
            assert not ACTIVE & data.keys(), data
            assert "text/plain" in data  # what a frontend without the extension shows
        inner = [data[MIME_TYPE]["data"] for _, data in shown]
        assert inner[0] == {"application/javascript": ATTACK}
        assert inner[1] == {"text/html": SCRIPTED}
        assert inner[2] == {"text/markdown": HANDLER}
        assert inner[3] == {"text/html": "<i>first</i>"}
        assert inner[4] == {"application/javascript": ATTACK}
        # The table is still HTML, for the extension to render inline (sanitized).
        assert inner[5] == {"text/html": TABLE}
        pages = [p for p in reply["payload"] if p.get("source") == "page"]
        assert pages and pages[0]["data"] == {MIME_TYPE: {"data": PAGE["data"]}}

    def test_widget_views_and_images_pass_unchanged(self, kernel: BlockingKernelClient
                                                    ) -> None:
        reply, messages = run(kernel, (
            "import ipywidgets\n"
            "from IPython.display import Image, SVG, display\n"
            "display(ipywidgets.IntSlider(value=3))\n"
            "display(SVG('<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"4\" height=\"4\"/>'))"))
        assert reply["status"] == "ok", reply
        view, svg = (data for _, data in bundles(messages))
        assert MIME_TYPE not in view and MIME_TYPE not in svg
        assert view["application/vnd.jupyter.widget-view+json"]["model_id"]
        assert svg["image/svg+xml"].startswith("<svg")

    def test_widget_html_is_sanitized(self, kernel: BlockingKernelClient) -> None:
        """ipywidgets puts an HTML widget's value in the page unsanitized: the kernel
        cleans it; an Output widget's listed outputs are confined; other state is kept."""
        reply, messages = run(kernel, (
            "import ipywidgets\n"
            f"html = ipywidgets.HTML({HANDLER!r} + '<b>bold</b>')\n"
            "html.value = '<svg onload=\"alert(1)\"></svg><i>x</i><script>alert(2)</script>'\n"
            "out = ipywidgets.Output()\n"
            "out.outputs = ({'output_type': 'display_data', 'metadata': {},\n"
            f"                'data': {{'text/html': {SCRIPTED!r}, 'text/plain': 'p'}}}},)\n"
            "slider = ipywidgets.IntSlider(value=3, description='<b>n</b>')"))
        assert reply["status"] == "ok", reply
        states = [(m["msg_type"], m["content"]["data"].get("state") or {}) for m in messages
                  if m["msg_type"] in ("comm_open", "comm_msg")]
        opened = [s for kind, s in states if kind == "comm_open"]
        html = next(s for s in opened if s.get("_model_name") == "HTMLModel")
        assert html["value"] == '<img src="x"><b>bold</b>'
        values = [s["value"] for kind, s in states if kind == "comm_msg" and "value" in s]
        assert values == ["<i>x</i>alert(2)"]
        outputs = [s["outputs"] for kind, s in states if kind == "comm_msg" and "outputs" in s]
        assert outputs[-1][0]["data"] == {"text/plain": "p", MIME_TYPE: {
            "data": {"text/html": SCRIPTED}}}
        slider = next(s for s in opened if s.get("_model_name") == "IntSliderModel")
        assert slider["value"] == 3 and slider["description"] == "<b>n</b>"

    def test_widget_html_is_sanitized_for_a_reloaded_page(self, kernel: BlockingKernelClient
                                                          ) -> None:
        """A reloaded page makes the box's widgets from the states the box answers with:
        all at once on the control comm, or per comm, where a state may say only now that
        it is an HTML widget (by a name the page reads as text, or with a value the page
        would join into markup)."""
        reply, messages = run(kernel, (
            "import comm, ipywidgets\n"
            "html = ipywidgets.HTML('<b>ok</b>')\n"
            f"html.value = {HANDLER!r}\n"
            "def posing(name, value):\n"
            "    label = comm.create_comm(target_name='jupyter.widget', data={'state': {\n"
            "        '_model_name': 'LabelModel', '_model_module': '@jupyter-widgets/controls'}})\n"
            "    label.on_msg(lambda msg: label.send({'method': 'update', 'state': {\n"
            "        '_model_name': name, '_model_module': '@jupyter-widgets/controls',\n"
            "        'value': value}}))\n"
            "    return label.comm_id\n"
            f"print(html.model_id, posing('HTMLModel', [{HANDLER!r}]),\n"
            f"      posing(['HTMLModel'], {HANDLER!r}))"))
        assert reply["status"] == "ok", reply
        html, *posing = "".join(m["content"]["text"] for m in messages
                                if m["msg_type"] == "stream").split()
        session, shell = kernel.session, kernel.shell_channel
        shell.send(session.msg("comm_open", {"comm_id": "reload", "data": {},
                                             "target_name": "jupyter.widget.control"},
                               metadata={"version": "1.0.0"}))
        shell.send(session.msg("comm_msg", {"comm_id": "reload",
                                            "data": {"method": "request_states"}}))
        for comm_id in posing:
            shell.send(session.msg("comm_msg", {"comm_id": comm_id,
                                                "data": {"method": "request_state"}}))
        answers: dict[str, dict[str, Any]] = {}
        while len(answers) < 3:
            msg = kernel.get_iopub_msg(timeout=TIMEOUT)
            if msg["msg_type"] == "comm_msg" and msg["content"]["comm_id"] in ("reload", *posing):
                answers[msg["content"]["comm_id"]] = msg["content"]["data"]
        assert answers["reload"]["states"][html]["state"]["value"] == '<img src="x">'
        assert [answers[comm_id]["state"]["value"] for comm_id in posing] == ["", '<img src="x">']

    def test_inspect_reply_is_confined(self, kernel: BlockingKernelClient) -> None:
        run(kernel, 'get_ipython().enable_html_pager = True\n'
                    'class Shown:\n    """<script>alert(1)</script>"""\nshown = Shown()')
        msg_id = kernel.inspect("shown", 5)
        reply = kernel.get_shell_msg(timeout=TIMEOUT)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = kernel.get_shell_msg(timeout=TIMEOUT)
        reply = reply["content"]
        assert reply.get("found") and not ACTIVE & reply["data"].keys(), reply
        assert "alert(1)" in reply["data"][MIME_TYPE]["data"]["text/html"]


def test_trusted_output_relays_as_is(kernel_env: dict[str, str], notebook_dir: Path) -> None:
    """The opt-out: the box's HTML and JavaScript arrive as the box sent them."""
    km, kc = start(kernel_env, notebook_dir, "--BoxRunKernel.trusted_output=True")
    try:
        reply, messages = run(kc, "from IPython.display import HTML, Javascript, display\n"
                                  "display(HTML('<script>1</script>')); display(Javascript('2'))")
        assert reply["status"] == "ok", reply
        html, js = (data for _, data in bundles(messages))
        assert html["text/html"] == "<script>1</script>" and MIME_TYPE not in html
        assert js["application/javascript"] == "2"
    finally:
        kc.stop_channels()
        km.shutdown_kernel()
