"""Loads the compiled extension ``skinanalysis._core`` with a clear message
when it is missing (the emulator subpackage does not need it)."""

try:
    from . import _core
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "skinanalysis._core (the compiled C core) is not available: %s. Build it "
        "with 'pip install .' (or 'python3 setup.py build_ext --inplace') from the "
        "source tree; it needs the libcurl and cJSON development files "
        "(scripts/setup, or apt-get install libcurl4-openssl-dev libcjson-dev). "
        "The emulator (python -m skinanalysis.emulator) works without it." % exc
    ) from exc

__all__ = ["_core"]
