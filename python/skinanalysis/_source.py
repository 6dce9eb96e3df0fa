"""How an image argument becomes the core's source fields."""

from __future__ import annotations

import os
import re
from typing import Any, Optional

from ._native import _core

_URL_RE = re.compile(r"^https?://", re.IGNORECASE)


def source_kwargs(image: Any, file_id: Optional[str] = None,
                  file_name: Optional[str] = None) -> dict:
    """Keyword arguments for ``_core.Client.submit`` from an image given as
    a path (str or os.PathLike), an http(s) URL (sent as src_file_url),
    bytes / bytearray / memoryview, or a binary file object (read whole);
    or from ``file_id`` (a file already uploaded).  Giving both an image and
    a file_id, or neither, is left to the core to refuse (ValidationError),
    so the rule exists once."""
    out: dict = {"file_name": file_name}
    if file_id is not None:
        out["file_id"] = file_id
    if image is None:
        return out
    if isinstance(image, str):
        if _URL_RE.match(image):
            out["image_url"] = image
        else:
            out["file_path"] = image
    elif isinstance(image, os.PathLike):
        out["file_path"] = image
    elif isinstance(image, (bytes, bytearray, memoryview)):
        out["buffer"] = image
    elif hasattr(image, "read"):
        # Larger than the API's limit is enough for the core to refuse it.
        data = image.read(_core.MAX_FILE_SIZE + 1)
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("image file objects must be opened in binary mode")
        out["buffer"] = bytes(data)
        name = getattr(image, "name", None)
        if file_name is None and isinstance(name, str):
            out["file_name"] = os.path.basename(name) or None
    else:
        raise TypeError("image must be a path, an http(s) URL, bytes or a binary "
                        "file object, not %s" % type(image).__name__)
    return out


def describe(image: Any) -> str:
    """A short label of an image argument for progress and batch output."""
    if isinstance(image, (str, os.PathLike)):
        return os.fspath(image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return "<%d bytes>" % len(image)
    name = getattr(image, "name", None)
    return name if isinstance(name, str) else "<%s>" % type(image).__name__
