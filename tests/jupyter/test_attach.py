"""The terminal WebSocket through a real ``jupyter server``: Jupyter's auth, then a shell."""

from __future__ import annotations

import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from ..api.test_attach import Tty
from .test_extension import BASE, TOKEN, Jupyter, jupyter  # noqa: F401 - the fixture


async def test_attach_behind_jupyter_auth(jupyter: Jupyter) -> None:  # noqa: F811
    with jupyter.authed() as c:
        box = c.post("boxrun/v1/boxes", json={"image": "debian", "cpu": 1, "memory_mb": 64}).json()
    url = f"ws://127.0.0.1:{jupyter.port}{BASE}boxrun/v1/boxes/{box['id']}/attach"
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url):
            pass
    assert refused.value.response.status_code == 401
    assert json.loads(refused.value.response.body)["code"] == "UNAUTHORIZED"
    async with connect(url, additional_headers={"Authorization": f"token {TOKEN}"}) as ws:
        tty = Tty(ws)
        await tty.type("echo $((6 * 7))\r")
        await tty.expect(rb"42\r\n")
        await tty.type("exit 5\r")
        assert await tty.control() == {"type": "exit", "code": 5}
