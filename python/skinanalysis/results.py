"""Typed results: ``Score`` and ``Result``.

A ``Result`` is built once from the plain data the extension copies out of
the core's result when a job ends; it does not refer to the C objects.
"""

from __future__ import annotations

import html
import ipaddress
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Union

from . import actions as _actions
from ._native import _core
from .errors import error_for

#: Largest mask, image or zip ``save_masks`` downloads (bytes).
MAX_DOWNLOAD = 64 * 1024 * 1024
#: Largest total size of the files extracted from a result zip (bytes).
MAX_EXTRACT = 256 * 1024 * 1024

_FORMATS = {_core.FORMAT_JSON: "json", _core.FORMAT_ZIP: "zip"}


def _ui(value: Optional[float]) -> Optional[int]:
    return None if value is None else int(round(value))


@dataclass(frozen=True)
class Score:
    """One scored concern, or one region of a concern.

    ``raw_score`` is the model's score (1..100, higher is healthier) and
    ``ui_score`` the display score; both are None for skin-type entries,
    which carry ``skin_type`` instead.  ``mask_urls`` are pre-signed URLs
    valid for about 2 hours; ``mask_name`` is the file name inside a zip
    result.
    """

    concern: str
    region: str
    raw_score: Optional[float]
    ui_score: Optional[int]
    skin_type: Optional[str]
    mask_urls: tuple[str, ...] = ()
    mask_name: Optional[str] = None

    def to_dict(self) -> dict:
        return {"concern": self.concern, "region": self.region,
                "raw_score": self.raw_score, "ui_score": self.ui_score,
                "skin_type": self.skin_type, "mask_urls": list(self.mask_urls),
                "mask_name": self.mask_name}


@dataclass(frozen=True, repr=False)
class Result:
    """The outcome of one successful analysis.

    ``scores`` are in the API's order; ``get(concern, region)`` finds one
    (an SD name also finds its HD counterpart and the other way round);
    iterating a Result iterates its scores.  ``overall`` is the API's "all"
    score, ``skin_age`` the estimated age; ``zip_url`` is set for
    ``format="zip"``; ``raw`` is ``data.results`` as the API sent it.
    """

    task_id: Optional[str]
    scores: tuple[Score, ...]
    overall: Optional[float]
    skin_age: Optional[float]
    resize_image_url: Optional[str]
    zip_url: Optional[str]
    format: str
    raw: Any = field(default=None, compare=False)

    # -- construction ------------------------------------------------------

    @classmethod
    def _from_core(cls, data: dict) -> "Result":
        scores = tuple(Score(concern, region or "whole", raw, _ui(ui), skin,
                             tuple(urls), mask)
                       for (concern, region, raw, ui, skin, urls, mask)
                       in data["scores"])
        text = data.get("json")
        try:
            raw = json.loads(text) if text else None
        except ValueError:
            raw = text
        return cls(task_id=data.get("task_id"), scores=scores,
                   overall=data.get("overall"), skin_age=data.get("skin_age"),
                   resize_image_url=data.get("resize_image_url"),
                   zip_url=data.get("zip_url"),
                   format=_FORMATS.get(data.get("format", _core.FORMAT_JSON), "json"),
                   raw=raw)

    @classmethod
    def from_json(cls, text: Union[str, bytes], kind: str = "status") -> "Result":
        """Parse a saved task-status body (``kind="status"``) or a zip's
        ``score_info.json`` (``kind="score_info"``) without a client."""
        if kind not in ("status", "score_info"):
            raise ValueError("kind must be 'status' or 'score_info'")
        if isinstance(text, str):
            text = text.encode("utf-8")
        code = _core.PARSE_STATUS_BODY if kind == "status" else _core.PARSE_SCORE_INFO
        return cls._from_core(_core.parse_result(text, code))

    # -- access ------------------------------------------------------------

    def get(self, concern: str, region: Optional[str] = "whole") -> Optional[Score]:
        """The score of ``concern`` in ``region`` (default "whole"), or None.
        ``get("wrinkle")`` also finds "hd_wrinkle" in an HD result."""
        region = region or "whole"
        names = [concern]
        other = _actions.counterpart(concern)
        if other:
            names.append(other)
        for name in names:
            for s in self.scores:
                if s.concern == name and s.region == region:
                    return s
        return None

    @property
    def concerns(self) -> tuple[str, ...]:
        """The distinct concerns of the result, in order."""
        return tuple(dict.fromkeys(s.concern for s in self.scores))

    def __iter__(self) -> Iterator[Score]:
        return iter(self.scores)

    def __len__(self) -> int:
        return len(self.scores)

    def __repr__(self) -> str:
        return ("Result(task_id=%r, format=%r, overall=%r, skin_age=%r, scores=%d)"
                % (self.task_id, self.format, self.overall, self.skin_age,
                   len(self.scores)))

    # -- conversions -------------------------------------------------------

    def to_dict(self) -> dict:
        """A JSON-serialisable dict of everything in the result."""
        return {"task_id": self.task_id, "format": self.format,
                "overall": self.overall, "skin_age": self.skin_age,
                "resize_image_url": self.resize_image_url,
                "zip_url": self.zip_url,
                "scores": [s.to_dict() for s in self.scores], "raw": self.raw}

    def to_dataframe(self):
        """The scores as a pandas DataFrame (one row per score); the
        overall score, skin age and task id are in ``df.attrs``.  Needs
        pandas (``pip install 'skinanalysis[pandas]'``)."""
        try:
            import pandas
        except ImportError as exc:
            raise ImportError("Result.to_dataframe() needs pandas: "
                              "pip install 'skinanalysis[pandas]'") from exc
        df = pandas.DataFrame([s.to_dict() for s in self.scores],
                              columns=["concern", "region", "raw_score", "ui_score",
                                       "skin_type", "mask_name", "mask_urls"])
        df.attrs.update(task_id=self.task_id, overall=self.overall,
                        skin_age=self.skin_age)
        return df

    def _repr_html_(self) -> str:
        """A score table with the masks, for Jupyter (everything escaped)."""
        esc = html.escape
        head = ["<div class=\"skinanalysis-result\">",
                "<p><b>Skin analysis</b>"]
        if self.task_id:
            head.append(" &middot; task <code>%s</code>" % esc(self.task_id))
        if self.overall is not None:
            head.append(" &middot; overall <b>%s</b>" % esc("%g" % self.overall))
        if self.skin_age is not None:
            head.append(" &middot; skin age <b>%s</b>" % esc("%g" % self.skin_age))
        if self.zip_url and _is_http(self.zip_url):
            head.append(" &middot; <a href=\"%s\">zip</a>" % esc(self.zip_url))
        head.append("</p>")
        rows = ["<table class=\"skinanalysis-scores\"><thead><tr>"
                "<th>concern</th><th>region</th><th>ui score</th><th>raw score</th>"
                "<th>skin type</th><th>mask</th></tr></thead><tbody>"]
        for s in self.scores:
            masks = "".join(
                "<img src=\"%s\" alt=\"%s\" loading=\"lazy\" "
                "style=\"max-height:72px;background:#888\">"
                % (esc(u), esc("%s %s mask" % (s.concern, s.region)))
                for u in s.mask_urls if _is_http(u))
            rows.append("<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td>"
                        "<td>%s</td></tr>"
                        % (esc(s.concern), esc(s.region), _cell(s.ui_score),
                           _cell(None if s.raw_score is None else round(s.raw_score, 2)),
                           _cell(s.skin_type), masks))
        rows.append("</tbody></table></div>")
        return "".join(head + rows)

    # -- files -------------------------------------------------------------

    def save_masks(self, folder: Union[str, os.PathLike], *, timeout: float = 60.0,
                   extract_zip: bool = True) -> list[Path]:
        """Download the masks, the resized image and, for zip results, the
        zip (extracted when ``extract_zip``) into ``folder``.  Result URLs
        are pre-signed: no Authorization header is ever sent.  They are
        valid for about 2 hours; analyse again (or poll the task) for fresh
        ones.  Returns the paths written."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        for s in self.scores:
            for i, url in enumerate(s.mask_urls):
                data = _download(url, timeout)
                base = _safe_name(Path(s.mask_name).stem if s.mask_name
                                  else "%s_%s" % (s.concern, s.region))
                suffix = "_%d" % i if len(s.mask_urls) > 1 else ""
                written.append(_write(out / (base + suffix + _ext(data)), data))
        if self.resize_image_url:
            data = _download(self.resize_image_url, timeout)
            written.append(_write(out / ("resize_image" + _ext(data)), data))
        if self.zip_url:
            data = _download(self.zip_url, timeout)
            name = _safe_name(self.task_id or "result")[:80] + ".zip"
            zpath = _write(out / name, data)
            written.append(zpath)
            if extract_zip:
                written.extend(_extract(zpath, out))
        return written


def _cell(value: Any) -> str:
    return "" if value is None else html.escape(str(value))


def _is_http(url: str) -> bool:
    return urllib.parse.urlsplit(url).scheme in ("http", "https")


def _safe_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")
    return cleaned or "file"


def _ext(data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if data.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    if data.startswith(b"PK\x03\x04"):
        return ".zip"
    return ".bin"


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _is_loopback(host: Optional[str]) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _download(url: str, timeout: float) -> bytes:
    """GET a result URL with urllib, never with an Authorization header,
    reading at most MAX_DOWNLOAD bytes."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise error_for(_core.ERR_PROTOCOL, "not an http(s) result URL")
    handlers = [urllib.request.ProxyHandler({})] if _is_loopback(parts.hostname) else []
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(url, headers={"User-Agent": "skinanalysis/"
                                                   + _core.VERSION})
    where = "%s://%s%s" % (parts.scheme, parts.netloc, parts.path)  # no query
    try:
        with opener.open(request, timeout=timeout) as response:
            data = response.read(MAX_DOWNLOAD + 1)
    except urllib.error.HTTPError as exc:
        hint = " (result URLs expire after about 2 hours)" if exc.code == 403 else ""
        raise error_for(_core.ERR_BAD_REQUEST, "download of %s failed: HTTP %d%s"
                        % (where, exc.code, hint), http_status=exc.code) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise error_for(_core.ERR_TRANSPORT, "download of %s failed: %s"
                        % (where, reason)) from None
    if len(data) > MAX_DOWNLOAD:
        raise error_for(_core.ERR_LIMIT, "download of %s is larger than %d bytes"
                        % (where, MAX_DOWNLOAD))
    return data


def _extract(zpath: Path, out: Path) -> list[Path]:
    """Extract regular files of a result zip under ``out``, refusing names
    that would leave it and stopping at MAX_EXTRACT bytes."""
    written = []
    total = 0
    root = out.resolve()
    try:
        with zipfile.ZipFile(zpath) as zf:
            for info in zf.infolist():
                if info.is_dir():
                    continue
                target = (root / info.filename).resolve()
                if root not in target.parents:
                    raise error_for(_core.ERR_PROTOCOL,
                                    "zip member %r leaves the folder" % info.filename)
                total += info.file_size
                if total > MAX_EXTRACT:
                    raise error_for(_core.ERR_LIMIT, "zip content over %d bytes"
                                    % MAX_EXTRACT)
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src:
                    data = src.read(info.file_size + 1)
                if len(data) != info.file_size:
                    raise error_for(_core.ERR_PROTOCOL,
                                    "zip member %r has a wrong size" % info.filename)
                written.append(_write(target, data))
    except zipfile.BadZipFile as exc:
        raise error_for(_core.ERR_PROTOCOL, "bad result zip: %s" % exc) from None
    return written


__all__ = ["Score", "Result"]
