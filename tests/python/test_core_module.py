"""The extension module itself: init, versions, catalogue, costs, the
exception hierarchy and the one status -> exception mapping."""

import importlib
import json
import os
import pickle

import pytest

import skinanalysis
from skinanalysis import _core
from .sa_helpers import FIXTURES, NOT_IMAGE, SD_IMAGE, HD_IMAGE, PNG_IMAGE, REPO

EXAMPLES = os.path.join(REPO, "tests", "fixtures", "spec", "examples")


def test_versions_agree():
    assert _core.version() == _core.VERSION == skinanalysis.__version__
    major, minor, patch = (int(x) for x in _core.VERSION.split("."))
    assert _core.VERSION_NUM == (major << 16) | (minor << 8) | patch


def test_module_is_multi_phase_with_heap_types():
    spec = _core.__spec__
    assert spec is not None and spec.name == "skinanalysis._core"
    # heap types: immutable, not subclassable, Job not constructible
    with pytest.raises(TypeError):
        _core.Client.extra = 1
    with pytest.raises(TypeError):
        type("Sub", (_core.Client,), {})
    with pytest.raises(TypeError):
        _core.Job()
    # a second module object from the same spec has its own state
    other = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(other)
    assert other.Error is not _core.Error
    assert other.cost(["wrinkle"]) == 9


def test_catalogue():
    assert len(skinanalysis.ALL_ACTIONS) == 32
    assert len(skinanalysis.SD_ACTIONS) == len(skinanalysis.HD_ACTIONS) == 16
    assert skinanalysis.SD_ACTIONS[0] == "wrinkle"
    assert skinanalysis.HD_ACTIONS[8] == "hd_dark_circle"
    assert skinanalysis.SD_ACTIONS[8] == "dark_circle_v2"
    assert skinanalysis.DEFAULT_ACTIONS == skinanalysis.SD_ACTIONS
    assert skinanalysis.tier_of("hd_pore") == "hd"
    with pytest.raises(skinanalysis.ValidationError):
        skinanalysis.tier_of("wrinkles")


def test_rules_come_from_the_core():
    """Counterparts, the default set and state names: the core's functions,
    the same ones Lua uses (no second copy in the sugar)."""
    from skinanalysis import actions
    for sd, hd in zip(skinanalysis.SD_ACTIONS, skinanalysis.HD_ACTIONS):
        assert actions.counterpart(sd) == _core.action_counterpart(sd) == hd
        assert actions.counterpart(hd) == sd
    assert actions.counterpart("wrinkles") is None
    assert actions.counterpart(None) is None
    assert skinanalysis.DEFAULT_ACTIONS == _core.default_actions(_core.TIER_SD)
    assert _core.default_actions(_core.TIER_HD) == skinanalysis.HD_ACTIONS
    assert _core.default_actions(7) == ()
    assert actions.normalize(None, hd=True) == list(skinanalysis.HD_ACTIONS)
    from skinanalysis.client import state_name
    names = [_core.job_state_name(s) for s in range(_core.JOB_CANCELLED + 1)]
    assert names == ["validate", "queued", "file_create", "upload", "task_create",
                     "poll_wait", "polling", "backoff", "fetching", "done", "failed",
                     "cancelled"]
    assert [state_name(s) for s in range(_core.JOB_CANCELLED + 1)] == names
    assert _core.job_state_name(-1) == _core.job_state_name(99) == "?"


def test_miniserver_args_json_is_the_cores():
    enc = _core.miniserver_args_json
    assert enc({}) == "{}"
    text = enc({"enable_mask_overlay": True, "opacity_dark_background_hd_pore": 0.4,
                "color_dark_background_hd_pore": "3D3D3D", "n": 3, "off": False,
                "esc": 'a"b\\\n'})
    assert text == ('{"enable_mask_overlay":true,"opacity_dark_background_hd_pore":0.4,'
                    '"color_dark_background_hd_pore":"3D3D3D","n":3,"off":false,'
                    '"esc":"a\\"b\\\\\\n"}')
    assert json.loads(text)["esc"] == 'a"b\\\n'
    assert json.loads(enc({"third": 1 / 3}))["third"] == 1 / 3
    cases = [({"k": [1]}, "miniserver_args.k: boolean, number or string expected, got list"),
             ({"k": None}, "got NoneType"),
             ({1: True}, "miniserver_args: keys must be strings"),
             ({"k": float("inf")}, "miniserver_args.k: not a finite number"),
             ({"k": 10 ** 400}, "miniserver_args.k: not a finite number"),
             ({"k": "a\0b"}, "miniserver_args.k: the string holds a NUL"),
             ({"a\0b": 1}, "miniserver_args: a key holds a NUL")]
    for value, message in cases:
        with pytest.raises(skinanalysis.ValidationError) as info:
            enc(value)
        assert info.value.status_name == "bad_option"
        assert message in str(info.value)
    with pytest.raises(TypeError):
        enc("{}")
    with pytest.raises(TypeError):
        enc([("a", 1)])


def test_is_mask_file_is_the_cores():
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 8
    jpeg = b"\xff\xd8\xff\xe0"
    rz = "https://cdn.example/x/resized%20image.jpg?sig=1"
    assert _core.is_mask_file("hd_pore.png", png, rz)
    assert _core.is_mask_file("m.jpg", jpeg, None)
    assert not _core.is_mask_file(_core.clean_file_name(rz), jpeg, rz)
    assert not _core.is_mask_file("score_info.json", b"{}", None)
    assert not _core.is_mask_file("cut.png", png[:7], None)


@pytest.mark.parametrize("n,sd,hd", [(1, 9, 12), (4, 9, 12), (5, 12, 16), (8, 12, 16),
                                      (9, 14, 20), (12, 14, 20), (13, 16, 22), (16, 16, 22)])
def test_unit_table(n, sd, hd):
    assert skinanalysis.cost(skinanalysis.SD_ACTIONS[:n]) == sd
    assert skinanalysis.cost(list(skinanalysis.HD_ACTIONS[:n])) == hd
    assert skinanalysis.Client.cost(",".join(skinanalysis.SD_ACTIONS[:n])) == sd


def test_cost_validates():
    with pytest.raises(skinanalysis.ValidationError) as info:
        skinanalysis.cost(["wrinkle", "hd_pore"])
    assert info.value.status_name == "mixed_tiers"
    with pytest.raises(skinanalysis.ValidationError, match="wrinkles"):
        skinanalysis.cost(["wrinkles"])
    with pytest.raises(skinanalysis.ValidationError):
        skinanalysis.cost([])
    assert skinanalysis.cost(["wrinkle", "wrinkle"]) == 9  # duplicates count once
    with pytest.raises(TypeError):
        skinanalysis.cost([1, 2])


HIERARCHY = {
    "UsageError": "Error", "ValidationError": "Error", "ApiError": "Error",
    "AuthError": "ApiError", "CreditError": "ApiError", "BadRequestError": "ApiError",
    "RateLimitError": "ApiError", "ServerError": "ApiError", "UploadError": "ApiError",
    "TaskExpiredError": "ApiError", "TaskTimeoutError": "ApiError",
    "AmbiguousTaskError": "ApiError", "EngineError": "Error", "ProtocolError": "Error",
    "LimitError": "ProtocolError", "TransportError": "Error",
    "RequestTimeoutError": "TransportError", "DeadlineError": "Error",
    "WaitTimeout": "Error", "WaitInterrupted": "Error", "CancelledError": "Error",
}


@pytest.mark.parametrize("name,parent", sorted(HIERARCHY.items()))
def test_hierarchy(name, parent):
    cls = getattr(skinanalysis, name)
    assert issubclass(cls, getattr(skinanalysis, parent))
    assert issubclass(cls, skinanalysis.Error)
    assert cls.__module__ == "skinanalysis"
    assert cls.__doc__


def test_builtin_mixins():
    assert issubclass(skinanalysis.ValidationError, ValueError)
    assert issubclass(skinanalysis.WaitTimeout, TimeoutError)
    assert issubclass(skinanalysis.DeadlineError, TimeoutError)
    assert issubclass(skinanalysis.RequestTimeoutError, TimeoutError)
    assert not issubclass(skinanalysis.Error, (ValueError, TimeoutError))


STATUS_CLASSES = {
    "ERR_INVALID_ARGUMENT": "UsageError", "ERR_BUSY": "UsageError",
    "ERR_NOT_DONE": "UsageError", "ERR_UNKNOWN_ACTION": "ValidationError",
    "ERR_MIXED_TIERS": "ValidationError", "ERR_ACTION_COUNT": "ValidationError",
    "ERR_SOURCE": "ValidationError", "ERR_FILE": "ValidationError",
    "ERR_IMAGE_FORMAT": "ValidationError", "ERR_IMAGE_TOO_LARGE": "ValidationError",
    "ERR_IMAGE_TOO_SMALL": "ValidationError", "ERR_BAD_OPTION": "ValidationError",
    "ERR_INSECURE": "ValidationError", "ERR_AUTH": "AuthError",
    "ERR_CREDITS": "CreditError", "ERR_BAD_REQUEST": "BadRequestError",
    "ERR_RATE_LIMITED": "RateLimitError", "ERR_SERVER": "ServerError",
    "ERR_PROTOCOL": "ProtocolError", "ERR_UPLOAD": "UploadError",
    "ERR_ENGINE": "EngineError", "ERR_TASK_EXPIRED": "TaskExpiredError",
    "ERR_TASK_TIMEOUT": "TaskTimeoutError", "ERR_AMBIGUOUS": "AmbiguousTaskError",
    "ERR_TRANSPORT": "TransportError", "ERR_TIMEOUT": "RequestTimeoutError",
    "ERR_DEADLINE": "DeadlineError", "ERR_LIMIT": "LimitError",
    "ERR_WAIT_TIMEOUT": "WaitTimeout", "ERR_INTERRUPTED": "WaitInterrupted",
    "ERR_CANCELLED": "CancelledError", "ERR_CALLBACK": "CancelledError",
}


@pytest.mark.parametrize("const,name", sorted(STATUS_CLASSES.items()))
def test_status_mapping(const, name):
    status = getattr(_core, const)
    exc = _core.error_for(status, "boom", http_status=418, code="Teapot", task_id="t1")
    assert type(exc) is getattr(skinanalysis, name)
    assert (exc.message, exc.status, exc.code, exc.task_id) == ("boom", 418, "Teapot", "t1")
    assert exc.sa_status == status
    assert exc.status_name == _core.status_name(status)
    assert exc.retryable == (status in (_core.ERR_TRANSPORT, _core.ERR_TIMEOUT,
                                        _core.ERR_RATE_LIMITED, _core.ERR_SERVER))
    assert str(exc) == "boom" and exc.args == ("boom",)
    again = pickle.loads(pickle.dumps(exc))
    assert type(again) is type(exc) and again.code == "Teapot"


def test_mapping_defaults():
    exc = _core.error_for(_core.ERR_ENGINE)
    assert exc.message == _core.strerror(_core.ERR_ENGINE) and exc.status is None
    assert exc.code is None and exc.task_id is None
    assert type(_core.error_for(-7)) is skinanalysis.Error  # a gap in the enum
    assert isinstance(_core.error_for(_core.ERR_NOMEM), MemoryError)
    # classes keep defaults for instances made by hand
    assert skinanalysis.AuthError("x").status is None


def test_probe_image():
    fmt, w, h = _core.probe_image(SD_IMAGE)
    assert fmt == _core.IMAGE_JPEG and min(w, h) >= _core.MIN_SIDE_SD
    with open(PNG_IMAGE, "rb") as fh:
        data = fh.read()
    assert _core.probe_image(data)[0] == _core.IMAGE_PNG
    assert _core.probe_image(bytearray(data))[0] == _core.IMAGE_PNG
    assert min(_core.probe_image(HD_IMAGE)[1:]) >= _core.MIN_SIDE_HD
    with pytest.raises(skinanalysis.ValidationError):
        _core.probe_image(NOT_IMAGE)
    with pytest.raises(skinanalysis.ValidationError):
        _core.probe_image(os.path.join(FIXTURES, "missing.jpg"))


def test_result_from_saved_bodies():
    with open(os.path.join(EXAMPLES, "task-status-success-json-hd.json"), "rb") as fh:
        body = fh.read()
    res = skinanalysis.Result.from_json(body)
    assert res.format == "json" and len(res) > 0
    whole = res.get("hd_wrinkle")
    assert whole is not None and whole.region == "whole"
    assert res.get("wrinkle") == whole  # the SD name finds the HD concern
    assert res.get("hd_wrinkle", "forehead").region == "forehead"
    assert res.raw == json.loads(body)["data"]["results"]
    with open(os.path.join(EXAMPLES, "score-info-sd.json"), "rb") as fh:
        info = skinanalysis.Result.from_json(fh.read(), kind="score_info")
    assert info.overall is not None and info.skin_age is not None
    assert any(s.mask_name for s in info)
    with pytest.raises(skinanalysis.ProtocolError):
        skinanalysis.Result.from_json(b"not json")


def test_imports_in_a_sub_interpreter():
    interpreters = pytest.importorskip("_xxsubinterpreters")
    src = os.path.dirname(os.path.dirname(os.path.abspath(skinanalysis.__file__)))
    iid = interpreters.create()
    try:
        interpreters.run_string(iid, (
            "import sys\n"
            "sys.path.insert(0, %r)\n"
            "from skinanalysis import _core\n"
            "assert _core.cost(['wrinkle']) == 9\n"
            "c = _core.Client('k', base_url='http://127.0.0.1:9')\n"
            "c.close()\n") % src)
    finally:
        interpreters.destroy(iid)
    assert skinanalysis.cost(["pore"]) == 9


ZIPS = os.path.join(FIXTURES, "zips")


def test_new_status_codes_map_to_their_classes():
    expect = {_core.ERR_ZIP: skinanalysis.ZipError,
              _core.ERR_URL_EXPIRED: skinanalysis.UrlExpiredError,
              _core.ERR_DOWNLOAD: skinanalysis.DownloadError,
              _core.ERR_IMAGE_DECODE: skinanalysis.ImageDecodeError,
              _core.ERR_WEBHOOK_SIGNATURE: skinanalysis.WebhookError,
              _core.ERR_WEBHOOK_STALE: skinanalysis.WebhookError}
    for status, cls in expect.items():
        exc = _core.error_for(status, "x")
        assert type(exc) is cls and exc.sa_status == status
        assert exc.status_name == _core.status_name(status)
    assert issubclass(skinanalysis.ZipError, skinanalysis.ProtocolError)
    assert issubclass(skinanalysis.UrlExpiredError, skinanalysis.DownloadError)
    assert issubclass(skinanalysis.ImageDecodeError, ValueError)
    assert _core.error_for(_core.ERR_DOWNLOAD).retryable
    assert _core.JOB_FETCHING == _core.JOB_BACKOFF + 1


def test_parse_zip_scores_and_files():
    with open(os.path.join(ZIPS, "result_hd.zip"), "rb") as fh:
        data = fh.read()
    d = _core.parse_zip(data)
    assert d["format"] == _core.FORMAT_ZIP
    concerns = {s[0] for s in d["scores"]}
    assert "hd_redness" in concerns and d["overall"] is not None
    names = [f[0] for f in d["files"]]
    assert "hd_redness_output.png" in [n.rsplit("/", 1)[-1] for n in names]
    for name, body, fmt, path in d["files"]:
        assert path is None   # held in memory
        assert body.startswith(b"\x89PNG") and fmt == _core.IMAGE_PNG
    masked = [s for s in d["scores"] if s[6]]
    assert masked, "zip scores carry output_mask_name"


@pytest.mark.parametrize("name", ["no_score_info.zip", "bad_json.zip"])
def test_parse_zip_refuses_a_broken_zip(name):
    with open(os.path.join(ZIPS, name), "rb") as fh:
        data = fh.read()
    with pytest.raises((skinanalysis.ZipError, skinanalysis.ProtocolError)):
        _core.parse_zip(data)
    with pytest.raises(skinanalysis.ZipError):
        _core.parse_zip(b"PK\x03\x04 not really a zip")
    with pytest.raises(skinanalysis.ZipError):
        _core.parse_zip(data[: len(data) // 2])


def test_parse_zip_keeps_names_inside_the_folder():
    with open(os.path.join(ZIPS, "zip_slip.zip"), "rb") as fh:
        d = _core.parse_zip(fh.read())
    for name, _body, _fmt, _path in d["files"]:
        assert ".." not in name.split("/") and not name.startswith("/")
