"""Typed results: ``Score`` and ``Result``.

A ``Result`` is built once from the plain data the extension copies out of
the core's result when a job ends.  A result that came from a job also keeps
that job (and its client): ``save_masks``, ``composite`` and the notebook
view download the masks through the core's engine -- never with the API key,
with fresh URLs when the old ones expired -- for as long as the client is
open.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterator, Mapping, Optional, Union

from . import actions as _actions
from ._native import _core
from .errors import Error, error_for

_FORMATS = {_core.FORMAT_JSON: "json", _core.FORMAT_ZIP: "zip"}
_NO_FILES: Mapping[str, bytes] = MappingProxyType({})
_NO_PATHS: Mapping[str, Path] = MappingProxyType({})


class _Origin:
    """What a result came from: the client wrapper (Client or AsyncClient),
    the core job that ended DONE, and the image as it was submitted (a path
    or bytes; None for URLs and file ids), for composites."""

    __slots__ = ("client", "job", "source")

    def __init__(self, client: Any, job: Any, source: Any) -> None:
        self.client = client
        self.job = job
        self.source = source


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
    score, ``skin_age`` the estimated age; ``raw`` is ``data.results`` as
    the API sent it.  ``format="zip"`` results carry ``zip_url`` and the
    same scores (read from the zip's score_info.json) and hold the mask
    PNGs in ``files`` (a read-only mapping name -> bytes); so does a result
    returned by ``Client.fetch_masks`` without a folder.  A result fetched
    into a folder holds no bytes: ``paths`` maps each file's name to the
    file written.  File names are unique within a result.
    """

    task_id: Optional[str]
    scores: tuple[Score, ...]
    overall: Optional[float]
    skin_age: Optional[float]
    resize_image_url: Optional[str]
    zip_url: Optional[str]
    format: str
    raw: Any = field(default=None, compare=False)
    files: Mapping[str, bytes] = field(default_factory=lambda: _NO_FILES, compare=False)
    paths: Mapping[str, Path] = field(default_factory=lambda: _NO_PATHS, compare=False)

    # -- construction ------------------------------------------------------

    @classmethod
    def _from_core(cls, data: dict, origin: Optional[_Origin] = None) -> "Result":
        scores = tuple(Score(concern, region or "whole", raw, _ui(ui), skin,
                             tuple(urls), mask)
                       for (concern, region, raw, ui, skin, urls, mask)
                       in data["scores"])
        text = data.get("json")
        try:
            raw = json.loads(text) if text else None
        except ValueError:
            raw = text
        files = data.get("files") or ()
        held = {f[0]: f[1] for f in files if f[1] is not None}
        on_disk = {f[0]: Path(f[3]) for f in files if len(f) > 3 and f[3] is not None}
        result = cls(task_id=data.get("task_id"), scores=scores,
                     overall=data.get("overall"), skin_age=data.get("skin_age"),
                     resize_image_url=data.get("resize_image_url"),
                     zip_url=data.get("zip_url"),
                     format=_FORMATS.get(data.get("format", _core.FORMAT_JSON), "json"),
                     raw=raw,
                     files=MappingProxyType(held) if held else _NO_FILES,
                     paths=MappingProxyType(on_disk) if on_disk else _NO_PATHS)
        object.__setattr__(result, "_origin", origin)
        object.__setattr__(result, "_fetched", None)
        if "delete_status" in data:   # delete_after: how the delete went
            status = data["delete_status"]
            object.__setattr__(result, "_delete_tried", True)
            object.__setattr__(result, "_delete_error", None if status == 0 else
                               _core.error_for(status, data.get("delete_errmsg") or None,
                                               code=data.get("delete_code"),
                                               task_id=result.task_id))
        return result

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

    @classmethod
    def from_zip(cls, data: Union[bytes, bytearray, memoryview, str, os.PathLike]) -> "Result":
        """Parse a saved result zip (bytes, or the path of the file) without
        a client: the scores and the mask files.  ZipError when it is
        corrupt or has no skinanalysisResult/score_info.json."""
        if isinstance(data, (str, os.PathLike)):
            data = Path(data).read_bytes()
        return cls._from_core(_core.parse_zip(data))

    def __getstate__(self) -> dict:
        """Pickles carry the data, not the job and client behind it."""
        state = dict(self.__dict__)
        state.pop("_origin", None)
        state.pop("_fetched", None)
        state["files"] = dict(self.files)
        state["paths"] = {name: str(path) for name, path in self.paths.items()}
        return state

    def __setstate__(self, state: dict) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "files", MappingProxyType(dict(state.get("files") or {})))
        object.__setattr__(self, "paths", MappingProxyType(
            {name: Path(p) for name, p in (state.get("paths") or {}).items()}))
        object.__setattr__(self, "_origin", None)
        object.__setattr__(self, "_fetched", None)

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
        return ("Result(task_id=%r, format=%r, overall=%r, skin_age=%r, scores=%d, "
                "files=%d)" % (self.task_id, self.format, self.overall, self.skin_age,
                               len(self.scores), len(self.files)))

    # -- delete_after --------------------------------------------------------

    @property
    def deleted(self) -> bool:
        """True when ``delete_after`` deleted the task from the vendor."""
        return bool(getattr(self, "_delete_tried", False)) and self.delete_error is None

    @property
    def delete_error(self) -> Optional[BaseException]:
        """The error of a ``delete_after`` delete that failed (the task and
        its image are still on the vendor's side); None otherwise."""
        return getattr(self, "_delete_error", None)

    # -- conversions -------------------------------------------------------

    def to_dict(self) -> dict:
        """A JSON-serialisable dict of everything in the result (file names
        only, not their bytes)."""
        extra = {}
        if getattr(self, "_delete_tried", False):
            extra = {"deleted": self.deleted,
                     "delete_error": str(self.delete_error) if self.delete_error else None}
        return {**extra, "task_id": self.task_id, "format": self.format,
                "overall": self.overall, "skin_age": self.skin_age,
                "resize_image_url": self.resize_image_url,
                "zip_url": self.zip_url,
                "scores": [s.to_dict() for s in self.scores],
                "files": sorted(self.files),
                "paths": {name: str(path) for name, path in sorted(self.paths.items())},
                "raw": self.raw}

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

    # -- files -------------------------------------------------------------

    def _held_files(self) -> Mapping[str, bytes]:
        """The files in memory: the result's own, or those fetched for it."""
        if self.files:
            return self.files
        fetched = getattr(self, "_fetched", None)
        return fetched.files if fetched is not None else _NO_FILES

    def _fetch(self, folder: Optional[Union[str, os.PathLike]],
               timeout: Optional[float]) -> "Result":
        """Download the masks and the resized image through the client that
        produced this result (blocking Client only): into ``folder``, or
        in memory (kept for later calls)."""
        origin: Optional[_Origin] = getattr(self, "_origin", None)
        if origin is None:
            raise error_for(_core.ERR_INVALID_ARGUMENT, "this result was not produced "
                            "by a job (Result.from_json): there is no client to "
                            "download its masks with")
        if origin.client.closed:
            raise error_for(_core.ERR_INVALID_ARGUMENT, "cannot download the masks: the "
                            "client that produced this result is closed (download "
                            "them before closing it)", task_id=self.task_id)
        if not hasattr(origin.client, "wakeup"):  # AsyncClient
            raise error_for(_core.ERR_BUSY, "this result comes from an AsyncClient: "
                            "use 'await client.fetch_masks(result, folder)'",
                            task_id=self.task_id)
        fetched = origin.client.fetch_masks(self, folder, timeout=timeout)
        if folder is None:
            object.__setattr__(self, "_fetched", fetched)
        return fetched

    def mask_files(self, *, timeout: Optional[float] = None) -> dict[str, bytes]:
        """The mask images (name -> bytes), without the resized input
        image; downloaded through the client into memory once when the
        result does not hold them yet (json results; at most the client's
        ``max_files_bytes`` for all of them).  ``timeout`` (seconds) bounds
        the download: WaitTimeout when it passes."""
        files = self._held_files()
        if not files and self.format == "json" and any(s.mask_urls for s in self.scores):
            files = self._fetch(None, timeout).files
        return {name: data for name, data in files.items()
                if _core.is_mask_file(name, data, self.resize_image_url)}

    def save_masks(self, folder: Union[str, os.PathLike], *,
                   timeout: Optional[float] = None) -> list[Path]:
        """Write the mask images (and, for json results, the resized input
        image) into ``folder`` (created when missing) and return the paths
        written.  Zip results and results returned by ``fetch_masks``
        write the files they hold; json results download them through the
        core straight to disk (never held in memory, never with the API
        key; expired URLs are refreshed by polling the task again and
        retried once), which needs the client that produced the result to
        be open.  File names come from the URLs, cleaned and made unique
        ("mask.png", "mask-2.png"); a file that exists is never replaced
        (the name then gets a variant, unless the file has the same
        bytes).  ``timeout`` (seconds; default: the client's deadline)
        bounds the download: WaitTimeout when it passes.  A mask that
        cannot be downloaded does not stop the others: the error of the
        first (DownloadError, UrlExpiredError, LimitError, ...) is raised
        once all ended, with ``exc.paths``, the files that were written."""
        out = Path(folder)
        files = self._held_files()
        if files or self.format != "json":
            out.mkdir(parents=True, exist_ok=True)
            names = _core.save_files(os.fspath(out), list(files), list(files.values()))
            return [out / name for name in names]
        try:
            fetched = self._fetch(out, timeout)  # creates the folder
        except Error as exc:
            partial = getattr(exc, "result", None)
            exc.paths = list(partial.paths.values()) if isinstance(partial, Result) else []
            raise
        return list(fetched.paths.values())

    def composite(self, source_image: Any, out_path: Union[str, os.PathLike], *,
                  timeout: Optional[float] = None) -> Path:
        """Write one overview PNG to ``out_path``: ``source_image`` (a
        path, bytes or a binary file object; None = the image that was
        analysed, when known) with every mask blended over it, each concern
        in its own colour.  Masks are downloaded first for json results
        (``timeout`` seconds at most).  Returns the path.  ImageDecodeError
        when an image cannot be decoded."""
        source = self._source_bytes(source_image)
        if source is None:
            raise error_for(_core.ERR_INVALID_ARGUMENT, "no source image: pass the "
                            "analysed image (path or bytes) as source_image")
        masks = self.mask_files(timeout=timeout)
        names = sorted(masks)
        _core.composite_write(source, [masks[n] for n in names], os.fspath(out_path),
                              [self.mask_concern(n) or "" for n in names])
        return Path(out_path)

    def _source_bytes(self, source_image: Any) -> Optional[bytes]:
        if source_image is None:
            resized = self._held_files().get(_url_name(self.resize_image_url) or "")
            if resized is not None:
                return resized
            origin = getattr(self, "_origin", None)
            source_image = origin.source if origin is not None else None
            if source_image is None:
                return None
        if isinstance(source_image, (str, os.PathLike)):
            return Path(source_image).read_bytes()
        if isinstance(source_image, (bytes, bytearray, memoryview)):
            return bytes(source_image)
        if hasattr(source_image, "read"):
            return source_image.read()
        raise TypeError("source_image must be a path, bytes or a binary file object")

    # -- notebooks ---------------------------------------------------------

    def _composite_data_url(self, max_side: int = 1024) -> Optional[str]:
        """The composite as a data: URL when the masks and a source image
        are in memory (no download from a repr); else None.  Scaled down
        to ``max_side`` pixels (a view needs no 4K PNG inline)."""
        files = self._held_files()
        names = [n for n in sorted(files)
                 if _core.is_mask_file(n, files[n], self.resize_image_url)]
        if not names:
            return None
        try:
            source = self._source_bytes(None)
            if source is None:
                return None
            with tempfile.TemporaryDirectory(prefix="skinanalysis-") as tmp:
                path = os.path.join(tmp, "composite.png")
                _core.composite_write(source, [files[n] for n in names], path,
                                      [self.mask_concern(n) or "" for n in names],
                                      max_side)
                data = Path(path).read_bytes()
        except (OSError, _core.Error):
            return None
        return "data:image/png;base64," + base64.b64encode(data).decode("ascii")

    def _repr_html_(self) -> str:
        """For Jupyter (everything escaped; see skinanalysis.view): the
        composite of the masks over the image when both are in memory,
        each concern's colour beside its row, ui scores as bars with the
        raw score beside, skin type per region in words.  Without masks in
        memory (a json result before ``mask_files()``), each row shows its
        masks from their pre-signed URLs instead (no download from a
        repr); ``to_html()`` never points at the network."""
        from .view import result_html
        return result_html(self, self._composite_data_url(), mask_urls=True)

    def to_html(self, title: str = "Skin analysis") -> str:
        """The notebook view as a whole self-contained HTML page (images
        inline, no network, no JavaScript): ``analyze --html``."""
        from .view import page, result_html
        return page(title, result_html(self, self._composite_data_url(), title))

    # -- views and comparisons -----------------------------------------------

    def mask_concern(self, name: str) -> Optional[str]:
        """The concern a mask file (by its name in ``files``) belongs to:
        the score that names it (zip ``mask_name``, or the file name of a
        mask URL), else the longest action name the file name starts
        with; None when none fits.  Composites tint each mask with its
        concern's colour (the core's palette), as the views' legends."""
        for s in self.scores:
            if s.mask_name == name or any(_url_name(u) == name for u in s.mask_urls):
                return s.concern
        for action in sorted(_core.actions(), key=len, reverse=True):
            if name.startswith(action):
                return action
        return None

    def compare(self, other: "Result") -> "Any":
        """What changed from this result (before) to ``other`` (after): a
        ``skinanalysis.compare.Comparison`` (per concern and region the
        ui and raw scores on each side and their change, the overall
        score and skin age), computed by the core (sa_scores_compare).
        In a notebook it shows as paired bars with the change marked."""
        from .compare import Comparison
        if not isinstance(other, Result):
            raise TypeError("compare() takes a Result")
        return Comparison(self, other)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Result":
        """A Result from ``to_dict()``'s output, or from a record of
        ``skinanalysis batch`` / ``analyze --json`` ({"image", "ok",
        "result": ...}): scores, overall, skin age and file names (not
        their bytes)."""
        if "result" in data and isinstance(data.get("result"), Mapping):
            data = data["result"]
        scores = tuple(Score(d["concern"], d.get("region") or "whole", d.get("raw_score"),
                             _ui(d.get("ui_score")), d.get("skin_type"),
                             tuple(d.get("mask_urls") or ()), d.get("mask_name"))
                       for d in data.get("scores") or ())
        paths = {name: Path(p) for name, p in (data.get("paths") or {}).items()}
        result = cls(task_id=data.get("task_id"), scores=scores,
                     overall=data.get("overall"), skin_age=data.get("skin_age"),
                     resize_image_url=data.get("resize_image_url"),
                     zip_url=data.get("zip_url"), format=data.get("format") or "json",
                     raw=data.get("raw"), files=_NO_FILES,
                     paths=MappingProxyType(paths) if paths else _NO_PATHS)
        object.__setattr__(result, "_origin", None)
        object.__setattr__(result, "_fetched", None)
        return result


def _is_http(url: str) -> bool:
    return urllib.parse.urlsplit(url).scheme in ("http", "https")


def _url_name(url: Optional[str]) -> Optional[str]:
    """The name the core gives the file of a URL (sa_file_name_clean)."""
    if not url:
        return None
    return _core.clean_file_name(url)


__all__ = ["Score", "Result"]
