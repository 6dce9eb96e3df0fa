"""Fault injection: a scenario is a list of rules, each naming an endpoint,
which requests to hit (by per-endpoint request number) and the fault.

Scenario JSON::

    {"faults": [
        {"endpoint": "task_status", "nth": [2, 3], "fault": "http_502_html"},
        {"endpoint": "task_create", "times": 1, "fault": "close_mid_response"},
        {"endpoint": "any", "every": 5, "fault": "delay", "delay_ms": 300},
        {"endpoint": "task_create", "nth": [1], "fault": "engine_error", "code": "error_no_face"},
        {"endpoint": "task_status", "fault": "respond", "status": 500,
         "body": {"status": 500, "error": "boom"}, "headers": {"x-request-id": "r-1"}},
        {"endpoint": "file_create", "fault": "patch", "set": {"data.files.0.file_id": "F"}}
    ]}

A bare list is accepted as the ``faults`` value. See docs/emulator.md.
"""

ENDPOINTS = frozenset({"file_create", "upload", "task_create", "task_status", "result",
                       "credit", "feature_cost", "task_delete", "any"})

# Faults that replace the whole response. ``apply`` decides whether the real
# request is processed first ("after") or not at all ("before").
REPLACING = frozenset({"http_500_html", "http_502_html", "http_503", "http_429",
                       "close_before_response", "malformed_json", "oversized_body",
                       "task_timeout_500", "invalid_task_id", "trickle"})
# Faults that damage the real response, so the request is always processed.
DAMAGING = frozenset({"close_mid_response", "truncated_json", "patch"})
# A scripted answer (status, body, headers): a hostile or odd server.
SCRIPTED = frozenset({"respond"})
FAULTS = REPLACING | DAMAGING | SCRIPTED | {"delay", "engine_error"}

DEFAULT_OVERSIZED_BYTES = 64 * 1024 * 1024


class ScenarioError(ValueError):
    pass


class Rule:
    __slots__ = ("index", "endpoint", "fault", "nth", "every", "times", "after",
                 "apply", "delay_ms", "code", "message", "size_bytes", "status", "body",
                 "headers", "content_type", "set", "hits")

    def __init__(self, index, spec):
        if not isinstance(spec, dict):
            raise ScenarioError("fault %d: must be an object" % index)
        known = {"endpoint", "fault", "nth", "every", "times", "after", "apply", "delay_ms",
                 "code", "message", "size_bytes", "status", "body", "headers", "content_type",
                 "set", "comment"}
        unknown = set(spec) - known
        if unknown:
            raise ScenarioError("fault %d: unknown keys %s" % (index, sorted(unknown)))
        self.index = index
        self.endpoint = spec.get("endpoint", "any")
        if self.endpoint not in ENDPOINTS:
            raise ScenarioError("fault %d: unknown endpoint %r" % (index, self.endpoint))
        self.fault = spec.get("fault")
        if self.fault not in FAULTS:
            raise ScenarioError("fault %d: unknown fault %r" % (index, self.fault))
        self.nth = spec.get("nth")
        if self.nth is not None:
            if isinstance(self.nth, int):
                self.nth = [self.nth]
            if not (isinstance(self.nth, list) and all(_posint(n) for n in self.nth)):
                raise ScenarioError("fault %d: nth must be a list of positive integers" % index)
            self.nth = frozenset(self.nth)
        self.every = _opt_posint(spec, "every", index)
        self.times = _opt_posint(spec, "times", index)
        self.after = _opt_posint(spec, "after", index, allow_zero=True) or 0
        self.apply = spec.get("apply", "before")
        if self.apply not in ("before", "after"):
            raise ScenarioError("fault %d: apply must be 'before' or 'after'" % index)
        if self.fault in DAMAGING:
            self.apply = "after"
        self.delay_ms = spec.get("delay_ms", 1000)
        if not isinstance(self.delay_ms, (int, float)) or self.delay_ms < 0:
            raise ScenarioError("fault %d: delay_ms must be a non-negative number" % index)
        self.code = spec.get("code", "error_no_face")
        self.message = spec.get("message")
        if not isinstance(self.code, str) or (self.message is not None
                                              and not isinstance(self.message, str)):
            raise ScenarioError("fault %d: code/message must be strings" % index)
        self.size_bytes = spec.get("size_bytes", DEFAULT_OVERSIZED_BYTES)
        if not _posint(self.size_bytes):
            raise ScenarioError("fault %d: size_bytes must be a positive integer" % index)
        if self.fault == "engine_error" and self.endpoint not in ("task_create", "task_status"):
            raise ScenarioError("fault %d: engine_error applies to task_create or task_status"
                                % index)
        self._scripted(index, spec)
        self.hits = 0

    def _scripted(self, index, spec):
        """The fields of ``respond`` (status, body, headers, content_type) and
        ``patch`` (set, headers)."""
        self.status = spec.get("status", 200)
        if not (_posint(self.status) and 100 <= self.status <= 599):
            raise ScenarioError("fault %d: status must be an HTTP status (100..599)" % index)
        self.body = spec.get("body")
        self.content_type = spec.get("content_type")
        if self.content_type is not None and not _header_value_ok(self.content_type):
            raise ScenarioError("fault %d: content_type must be a one-line string" % index)
        self.headers = spec.get("headers") or {}
        if not (isinstance(self.headers, dict)
                and all(_token(k) and _header_value_ok(v) for k, v in self.headers.items())):
            raise ScenarioError("fault %d: headers must map header names to one-line strings"
                                % index)
        self.set = spec.get("set")
        if self.fault == "patch":
            if not (isinstance(self.set, dict) and self.set
                    and all(isinstance(k, str) and k for k in self.set)):
                raise ScenarioError("fault %d: patch needs 'set', an object of dotted paths "
                                    "to values" % index)
        elif self.set is not None:
            raise ScenarioError("fault %d: 'set' belongs to a patch fault" % index)

    def matches(self, n):
        """Does request number ``n`` (1-based, per endpoint) get this fault?"""
        if self.nth is not None and n not in self.nth:
            return False
        if n <= self.after:
            return False
        if self.every is not None and (n - self.after) % self.every != 0:
            return False
        if self.times is not None and self.hits >= self.times:
            return False
        return True

    def describe(self):
        return {"index": self.index, "endpoint": self.endpoint, "fault": self.fault}


_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789"
                         "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _token(name):
    return isinstance(name, str) and bool(name) and all(c in _TOKEN_CHARS for c in name)


def _header_value_ok(value):
    return isinstance(value, str) and "\r" not in value and "\n" not in value


def _posint(v):
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _opt_posint(spec, key, index, allow_zero=False):
    v = spec.get(key)
    if v is None:
        return None
    if not (isinstance(v, int) and not isinstance(v, bool) and (v > 0 or (allow_zero and v == 0))):
        raise ScenarioError("fault %d: %s must be a positive integer" % (index, key))
    return v


class Scenario:
    """Parsed scenario plus the per-endpoint request counters it matches on."""

    def __init__(self, spec=None):
        if spec is None:
            spec = {"faults": []}
        if isinstance(spec, list):
            spec = {"faults": spec}
        if not isinstance(spec, dict) or not isinstance(spec.get("faults", []), list):
            raise ScenarioError("scenario must be an object with a 'faults' list")
        unknown = set(spec) - {"faults", "comment", "name"}
        if unknown:
            raise ScenarioError("scenario: unknown keys %s" % sorted(unknown))
        self.spec = spec
        self.rules = [Rule(i, r) for i, r in enumerate(spec.get("faults", []))]
        self.counts = {}

    def pick(self, endpoint):
        """Count one request on ``endpoint`` and return the first matching Rule."""
        n = self.counts.get(endpoint, 0) + 1
        self.counts[endpoint] = n
        n_any = self.counts.get("any", 0) + 1
        self.counts["any"] = n_any
        for rule in self.rules:
            number = n_any if rule.endpoint == "any" else n
            if rule.endpoint not in ("any", endpoint):
                continue
            if rule.matches(number):
                rule.hits += 1
                return rule
        return None

    def to_json(self):
        return {"scenario": self.spec, "counts": dict(self.counts),
                "hits": [dict(r.describe(), hits=r.hits) for r in self.rules]}
