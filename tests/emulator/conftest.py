"""Fixtures for the emulator tests.

The emulator is imported as the top-level package ``emulator`` from
python/skinanalysis (like scripts/emulator does), so these tests run from a
fresh checkout before the compiled extension is built.
"""

import json
import os
import sys
import time

import pytest
import requests

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "python", "skinanalysis"))
sys.path.append(os.path.join(REPO, "tests"))

import emulator  # noqa: E402
from emu_factory import emulator_factory  # noqa: E402

FIXTURES = os.path.join(REPO, "tests", "fixtures")
# The spec and its examples, as copied into the repository from shared/spec
# (override with SKINANALYSIS_SPEC_DIR to test against another copy).
SPEC_DIR = os.environ.get("SKINANALYSIS_SPEC_DIR", os.path.join(FIXTURES, "spec"))
SPEC_PATH = os.path.join(SPEC_DIR, "skin-analysis.openapi.json")
EXAMPLES = os.path.join(SPEC_DIR, "examples")
KEY = "emulator-key"
AUTH = {"Authorization": "Bearer " + KEY}


def fixture_bytes(name):
    with open(os.path.join(FIXTURES, name), "rb") as fh:
        return fh.read()


def example(name):
    with open(os.path.join(EXAMPLES, name), encoding="utf-8") as fh:
        return json.load(fh)


# --- OpenAPI validation ----------------------------------------------------------

class SpecValidator:
    """Validates response bodies against shared/spec/skin-analysis.openapi.json."""

    def __init__(self, path):
        from openapi_schema_validator import OAS30Validator
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT4
        with open(path, encoding="utf-8") as fh:
            self.spec = json.load(fh)
        resource = Resource.from_contents(self.spec, default_specification=DRAFT4)
        self.registry = Registry().with_resource("urn:spec", resource)
        self.cls = OAS30Validator
        self.count = 0

    def schema_validator(self, ref):
        return self.cls({"$ref": "urn:spec#" + ref}, registry=self.registry)

    def response_ref(self, path, method, status):
        if path == "/s2s/v2.0/file":  # generic upload: same shapes, not in the spec
            path = "/s2s/v2.0/file/skin-analysis"
        if "/task/skin-analysis/" in path:
            path = path.rsplit("/", 1)[0] + "/{task_id}"
        op = self.spec["paths"][path][method.lower()]
        response = op["responses"].get(str(status))
        if response is None:
            # Statuses the spec does not list (404 InvalidFileId): the error envelope.
            assert status >= 400, "undocumented success status %s" % status
            return "/components/schemas/ErrorResponse"
        if "$ref" in response:
            response = self.spec["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
        return response["content"]["application/json"]["schema"]["$ref"][1:]

    def validate(self, path, method, status, body):
        self.schema_validator(self.response_ref(path, method, status)).validate(body)
        self.count += 1

    def validate_schema(self, name, instance):
        self.schema_validator("/components/schemas/" + name).validate(instance)


@pytest.fixture(scope="session")
def spec():
    return SpecValidator(SPEC_PATH)


# --- API helper -----------------------------------------------------------------------

class Api:
    """Thin raw-HTTP helper that validates every /s2s/ JSON response."""

    def __init__(self, emu, spec, key=KEY, version="v2.1"):
        self.emu = emu
        self.spec = spec
        self.key = key
        self.version = version
        self.http = requests.Session()

    def headers(self, key=None):
        return {"Authorization": "Bearer " + (key or self.key)}

    def call(self, method, path, body=None, key=None, headers=None, raw=None):
        hdrs = dict(self.headers(key)) if headers is None else headers
        if body is not None:
            resp = self.http.request(method, self.emu.base_url + path, json=body, headers=hdrs)
        else:
            resp = self.http.request(method, self.emu.base_url + path, data=raw, headers=hdrs)
        assert resp.headers["Content-Type"] == "application/json"
        data = resp.json()
        assert data["status"] == resp.status_code
        self.spec.validate(path, method, resp.status_code, data)
        assert resp.headers["x-request-id"].isdigit()
        return resp.status_code, data

    def file_create(self, content_type="image/jpeg", size=1000, name="selfie.jpg", path=None,
                    **kw):
        body = {"files": [{"content_type": content_type, "file_name": name, "file_size": size}]}
        return self.call("POST", path or "/s2s/%s/file/skin-analysis" % self.version, body, **kw)

    def upload_slot(self, data, content_type="image/jpeg"):
        status, body = self.file_create(content_type, len(data))
        assert status == 200, body
        return body["data"]["files"][0]

    def upload(self, data, content_type="image/jpeg"):
        """File create + PUT; returns file_id."""
        slot = self.upload_slot(data, content_type)
        req = slot["requests"][0]
        resp = requests.put(req["url"], data=data,
                            headers={k: str(v) for k, v in req["headers"].items()})
        assert resp.status_code == 200, resp.text
        return slot["file_id"]

    def create_task(self, body, version=None, **kw):
        return self.call("POST", "/s2s/%s/task/skin-analysis" % (version or self.version), body,
                         **kw)

    def status(self, task_id, version=None, **kw):
        return self.call("GET", "/s2s/%s/task/skin-analysis/%s" % (version or self.version,
                                                                   task_id), **kw)

    def run(self, data, actions, fmt="json", content_type="image/jpeg", extra=None):
        """Upload, create, poll until terminal; returns (task_id, final status body)."""
        file_id = self.upload(data, content_type)
        body = {"src_file_id": file_id, "dst_actions": actions, "format": fmt}
        body.update(extra or {})
        status, created = self.create_task(body)
        assert status == 200, created
        task_id = created["data"]["task_id"]
        return task_id, self.wait(task_id)

    def wait(self, task_id, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            status, body = self.status(task_id)
            assert status == 200, body
            if body["data"]["task_status"] != "running":
                return body
            assert time.monotonic() < deadline, "task still running"
            time.sleep(0.02)


@pytest.fixture
def make_emu():
    """Factory: ``make_emu(**options)`` starts an Emulator (stopped at teardown).
    Defaults for tests: instant tasks, rate limits off."""
    yield from emulator_factory(emulator.Emulator, task_seconds=0, rate_limit=False)


@pytest.fixture
def emu(make_emu):
    return make_emu()


@pytest.fixture
def api(emu, spec):
    return Api(emu, spec)


@pytest.fixture(scope="session")
def sd_jpeg():
    return fixture_bytes("portrait_sd.jpg")


@pytest.fixture(scope="session")
def hd_jpeg():
    return fixture_bytes("portrait_hd.jpg")
