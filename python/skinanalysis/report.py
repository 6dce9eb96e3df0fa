"""A batch report: one self-contained HTML page for many results.

``Report.from_outcomes(outcomes, labels)`` builds it from the outcomes of
``analyze_many`` (results and exceptions); ``Report.from_jsonl(path,
images=DIR, masks=DIR)`` from the JSON Lines file of ``skinanalysis batch``
(what ``skinanalysis report`` does).  It shows the summary (images,
failures, units spent: the units of each successful analysis), the
distribution of each concern's ui score as a small inline SVG chart, and a
row per image with a thumbnail of its composite (when the masks and the
image are at hand), sortable by any column.  In a notebook a Report
displays itself; ``save(path)`` writes the page.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

from ._native import _core

#: Longest side of a thumbnail, in pixels (twice its CSS size, for HiDPI).
THUMB_SIDE = 192
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"


def _units(result: Any) -> int:
    from . import actions as _actions
    from .errors import Error
    try:
        return _actions.cost(list(result.concerns))
    except (Error, ValueError):
        return 0


def _error_text(exc: Any) -> str:
    if isinstance(exc, BaseException):
        return "%s: %s" % (type(exc).__name__, exc)
    err = exc if isinstance(exc, dict) else {}
    return "%s: %s" % (err.get("type", "error"), err.get("message", ""))


class Report:
    """The entries of a batch: ``entries`` ({"image", "result",
    "thumbnail"}), ``failures`` ((image, error text)), ``units``."""

    def __init__(self, entries: Sequence[dict], failures: Sequence[tuple[str, str]],
                 units: int, title: str = "Skin analysis batch report") -> None:
        self.entries = list(entries)
        self.failures = list(failures)
        self.units = units
        self.title = title

    @classmethod
    def from_outcomes(cls, outcomes: Iterable[Any], labels: Optional[Iterable[str]] = None,
                      **kw: Any) -> "Report":
        """From results and exceptions (``analyze_many``'s list); labels
        default to 1, 2, ...  Thumbnails for results whose masks and image
        are in memory (zip results, or after ``mask_files()``)."""
        outcomes = list(outcomes)
        labels = list(labels) if labels is not None else [str(i + 1)
                                                          for i in range(len(outcomes))]
        entries, failures, units = [], [], 0
        for label, outcome in zip(labels, outcomes):
            if isinstance(outcome, BaseException):
                failures.append((label, _error_text(outcome)))
                continue
            units += _units(outcome)
            entries.append({"image": label, "result": outcome,
                            "thumbnail": outcome._composite_data_url(THUMB_SIDE)})
        return cls(entries, failures, units, **kw)

    @classmethod
    def from_jsonl(cls, path: Union[str, os.PathLike],
                   images: Optional[Union[str, os.PathLike]] = None,
                   masks: Optional[Union[str, os.PathLike]] = None, **kw: Any) -> "Report":
        """From the JSON Lines file of ``skinanalysis batch`` (the last
        record of each image counts).  Thumbnails: the image under
        ``images`` with the masks under ``masks``/<image stem>/ (the
        folder of ``batch --save-masks``) or the record's file paths."""
        from .results import Result
        last: dict[str, dict] = {}
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("image"), str):
                last[rec["image"]] = rec
        entries, failures, units = [], [], 0
        for label, rec in last.items():
            if not (rec.get("ok") and isinstance(rec.get("result"), dict)):
                failures.append((label, _error_text(rec.get("error"))))
                continue
            result = Result.from_dict(rec)
            units += _units(result)
            entries.append({"image": label, "result": result,
                            "thumbnail": _thumbnail(result, label, images, masks)})
        return cls(entries, failures, units, **kw)

    def _repr_html_(self) -> str:
        from .view import report_html
        return report_html(self.entries, self.units, self.failures, self.title)

    def to_html(self) -> str:
        """The whole self-contained page."""
        from .view import page
        return page(self.title, self._repr_html_())

    def save(self, path: Union[str, os.PathLike]) -> Path:
        Path(path).write_text(self.to_html(), encoding="utf-8")
        return Path(path)

    def __repr__(self) -> str:
        return "Report(images=%d, failures=%d, units=%d)" % (
            len(self.entries) + len(self.failures), len(self.failures), self.units)


def _thumbnail(result: Any, label: str, images: Optional[Union[str, os.PathLike]],
               masks: Optional[Union[str, os.PathLike]]) -> Optional[str]:
    """The composite of one image of a saved batch as a data: URL, or None
    when its image is not found (or cannot be decoded)."""
    from .errors import Error
    if images is None or not (Path(images) / label).is_file():
        return None
    folder = Path(masks) / Path(label).stem if masks is not None else None
    if folder is not None and folder.is_dir():
        files = {f.name: f.read_bytes() for f in sorted(folder.iterdir()) if f.is_file()}
    else:
        files = {n: p.read_bytes() for n, p in result.paths.items() if p.is_file()}
    resized = result.resize_image_url and _core.clean_file_name(result.resize_image_url)
    names = [n for n in sorted(files) if n != resized
             and (files[n].startswith(_PNG_MAGIC) or files[n].startswith(_JPEG_MAGIC))]
    try:
        with tempfile.TemporaryDirectory(prefix="skinanalysis-") as tmp:
            out = os.path.join(tmp, "thumb.png")
            _core.composite_write((Path(images) / label).read_bytes(),
                                  [files[n] for n in names], out,
                                  [result.mask_concern(n) or "" for n in names],
                                  THUMB_SIDE)
            data = Path(out).read_bytes()
    except (OSError, Error):
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


__all__ = ["Report"]
