"""The OpenAPI description (``jupyter_ext/api/openapi.yaml``): valid OpenAPI 3.1, in step
with the routes and handlers, matching what a real server answers, and served as JSON."""

from __future__ import annotations

import dataclasses
import json
import re
from importlib.resources import files
from typing import Any

import httpx
import pytest
import yaml
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

import jupyter_ext
from jupyter_ext.api.base import BoxRunHandler
from jupyter_ext.api.misc import DashboardHandler
from jupyter_ext.api.routes import ROUTES, NotFoundHandler
from jupyter_ext.core.errors import HTTP_STATUS
from jupyter_ext.core.models import Box, Exec
from jupyter_ext.images.store import ImageInfo
from jupyter_ext.sessions.models import Session

from ..servers import ServerProcess

VERBS = ("get", "post", "put", "delete", "patch", "head", "options", "trace")
#: Routes the description need not have: the catch-all and the dashboard page.
UNDESCRIBED = (NotFoundHandler, DashboardHandler)


def document() -> dict[str, Any]:
    return yaml.safe_load((files("jupyter_ext.api") / "openapi.yaml").read_text(encoding="utf-8"))


SPEC = document()


def handler_methods(handler: type) -> set[str]:
    """The HTTP methods ``handler`` implements: those defined by it or by the BoxRun
    classes it derives from, not tornado's defaults (which answer 405)."""
    return {verb for cls in handler.__mro__
            if isinstance(cls, type) and issubclass(cls, BoxRunHandler)
            for verb in VERBS if verb in vars(cls)}


def route_of(path: str) -> tuple[str, type]:
    """The route tornado dispatches a described path to (the first that matches)."""
    concrete = re.sub(r"\{[^}/]+\}", "x1", path)
    for pattern, handler in ROUTES:
        if re.fullmatch(pattern, concrete):
            return pattern, handler
    raise AssertionError(f"no route serves {path}")


def schema(name: str) -> dict[str, Any]:
    return SPEC["components"]["schemas"][name]


def check(instance: Any, name: str) -> None:
    """``instance`` is valid against the component schema ``name``."""
    wrapper = {"$ref": f"#/components/schemas/{name}", "components": SPEC["components"]}
    errors = [e.message for e in OAS31Validator(wrapper).iter_errors(instance)]
    assert not errors, f"{name}: {errors} in {json.dumps(instance)[:500]}"


# --- the document itself -------------------------------------------------------------


def test_valid_openapi_31() -> None:
    validate(SPEC)
    assert SPEC["openapi"].startswith("3.1.")
    assert SPEC["info"]["title"] == "BoxRun API"
    assert SPEC["info"]["version"] == jupyter_ext.__version__
    # plain JSON: no YAML-only values (dates, integer keys) that JSON would change
    assert json.loads(json.dumps(SPEC)) == SPEC


def test_every_route_is_described_with_its_methods() -> None:
    described: dict[str, list[str]] = {}
    for path, item in SPEC["paths"].items():
        pattern, handler = route_of(path)
        assert handler is not NotFoundHandler, f"{path} is described but no route serves it"
        operations = {verb for verb in VERBS if verb in item}
        assert operations == handler_methods(handler), (
            f"{path}: described {sorted(operations)}, {handler.__name__} implements "
            f"{sorted(handler_methods(handler))}")
        described.setdefault(pattern, []).append(path)
    for pattern, handler in ROUTES:
        if not issubclass(handler, UNDESCRIBED):
            assert pattern in described, f"route {pattern} ({handler.__name__}) is not described"


def test_objects_have_their_keys() -> None:
    for name, model in (("Box", Box), ("Exec", Exec), ("Session", Session), ("Image", ImageInfo)):
        keys = {f.name for f in dataclasses.fields(model)}
        assert set(schema(name)["properties"]) == keys, name
        assert set(schema(name)["required"]) == keys, name
    assert set(schema("Error")["properties"]["code"]["enum"]) == set(HTTP_STATUS)


# --- against a real server -----------------------------------------------------------


@pytest.fixture
def http(server: ServerProcess):
    with server.http() as client:
        yield client


def test_served_as_json(server: ServerProcess, http: httpx.Client) -> None:
    resp = http.get("/v1/openapi.json")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.json() == document()
    with server.tcp() as tcp:  # authenticated like every route
        assert tcp.get("/v1/openapi.json").status_code == 401
        resp = tcp.get("/v1/openapi.json", headers={"Authorization": f"token {server.token}"})
        assert resp.json() == document()


def test_described_actions_are_the_accepted_ones(http: httpx.Client) -> None:
    """Each ``:action`` path is one its handler accepts (a missing box, not an unknown
    action), and the handler accepts no other (its refusal lists them)."""
    actions: dict[str, set[str]] = {}
    for path in SPEC["paths"]:
        if ":" in path:
            base, action = path.rsplit(":", 1)
            actions.setdefault(base, set()).add(action)
    assert len(actions) == len([p for p, _ in ROUTES if p.endswith(r":([A-Za-z_]+)")])
    for base, names in actions.items():
        concrete = re.sub(r"\{[^}/]+\}", "nothing", base)
        for name in names:
            resp = http.post(f"{concrete}:{name}")
            assert (resp.status_code, resp.json()["code"]) == (404, "BOX_NOT_FOUND"), resp.text
        refusal = http.post(f"{concrete}:bogus")
        assert refusal.status_code == 400, refusal.text
        accepted = set(re.findall(r":(\w+)", refusal.json()["message"].split("use", 1)[1]))
        assert accepted == names, f"{base}: described {names}, accepted {accepted}"


def test_replies_match_the_schemas(http: httpx.Client) -> None:
    check(http.get("/v1/info").json(), "Info")
    for image in http.get("/v1/images").json():
        check(image, "Image")
    missing = http.get("/v1/boxes/nothing")
    assert missing.status_code == 404
    check(missing.json(), "Error")
    resp = http.post("/v1/boxes", json={"image": "debian", "cpu": 1, "memory_mb": 64,
                                        "env": {"A": "1"}})
    assert resp.status_code == 201, resp.text
    box = resp.json()
    try:
        check(box, "Box")
        bid = box["id"]
        ex = http.post(f"/v1/boxes/{bid}/exec", json={"cmd": ["sh", "-c", "echo hi"]}).json()
        check(ex, "Exec")
        events = [json.loads(line[6:]) for line in
                  http.get(f"/v1/boxes/{bid}/exec/{ex['id']}/events").text.splitlines()
                  if line.startswith("data: ")]
        for event in events:
            check(event, "ExecEvent")
        check(json.loads(events[-1]["data"]), "ExitData")
        check(http.get(f"/v1/boxes/{bid}/exec/{ex['id']}").json(), "Exec")
        check(http.get(f"/v1/boxes/{bid}/metrics").json(), "MetricsSample")
        snap = http.post(f"/v1/boxes/{bid}/snapshots", json={"name": "s1"})
        assert snap.status_code == 201, snap.text
        check(snap.json(), "Snapshot")
        for listed in http.get(f"/v1/boxes/{bid}/snapshots").json():
            check(listed, "Snapshot")
        check(http.post(f"/v1/boxes/{bid}/snapshots/s1:restore").json(), "Box")
        with http.stream("GET", "/v1/events", headers={"Last-Event-ID": "0"}) as stream:
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    event = json.loads(line[6:])
                    check(event, "LifecycleEvent")
                    if event["type"] == "restored" and event["box"]["id"] == bid:
                        break

        resp = http.post(f"/v1/boxes/{bid}/sessions", json={"kind": "shell"})
        assert resp.status_code == 201, resp.text
        session = resp.json()
        check(session, "Session")
        path = f"/v1/boxes/{bid}/sessions/{session['id']}"
        sent = http.post(path + "/messages", json={
            "channel": "shell", "msg_type": "execute_request", "content": {"code": "echo hi"}})
        assert sent.status_code == 202, sent.text
        check(sent.json(), "MessageAccepted")
        reply = None
        with http.stream("GET", path + "/events") as stream:
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    event = json.loads(line[6:])
                    check(event, "SessionEvent")
                    if event["msg_type"] == "execute_reply":
                        reply = event
                        break
        assert reply is not None and reply["parent_msg_id"] == sent.json()["msg_id"]
        check(reply["metadata"]["boxrun_usage"], "CellUsage")
        check(http.delete(path).json(), "Ok")
    finally:
        http.delete(f"/v1/boxes/{box['id']}", params={"force": "true"})
