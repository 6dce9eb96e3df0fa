"""Build of skinanalysis: the C core (core/src/*.c) and the binding
(bindings/python/*.c) compiled into ONE extension, skinanalysis._core.

libcurl and cJSON are found with pkg-config (curl-config and the Debian
include path as fall-backs); the metadata is in pyproject.toml.  Only
PyInit__core is exported (a linker version script on Linux), so the core's
symbols never clash with another copy of the library in the process.

The binding uses only the limited API of Python 3.10 (Py_LIMITED_API), so
the extension is built for the stable ABI (_core.abi3.so) and the wheel is
tagged cp310-abi3: one wheel for every CPython >= 3.10.  A free-threaded
CPython has no limited API: there it builds against the full API.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))
HINT = ("run scripts/setup, or: apt-get install pkg-config libcurl4-openssl-dev "
        "libcjson-dev libssl-dev libzip-dev libpng-dev libjpeg-dev")
# The other libraries the core links (webhook HMAC, zip results, composites):
# (pkg-config name, what, library name for the plain -l fall-back)
OTHER_LIBS = [("libcrypto", "OpenSSL libcrypto", "crypto"), ("libzip", "libzip", "zip"),
              ("libpng", "libpng", "png"), ("libjpeg", "libjpeg", "jpeg")]


def header_version():
    """SA_VERSION from the public header (the one version of the project)."""
    path = os.path.join(ROOT, "core", "include", "skinanalysis.h")
    try:
        with open(path, encoding="utf-8") as fh:
            match = re.search(r'#define\s+SA_VERSION\s+"([^"]+)"', fh.read())
    except OSError:
        match = None
    return match.group(1) if match else "0.2.0"


def run(cmd):
    try:
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return shlex.split(out.stdout)


def find_package(pkg, what, fallback):
    """(cflags, libs) of a pkg-config package, else of the fall-back."""
    if shutil.which("pkg-config"):
        cflags = run(["pkg-config", "--cflags", pkg])
        libs = run(["pkg-config", "--libs", pkg])
        if cflags is not None and libs is not None:
            return cflags, libs
    found = fallback()
    if found is None:
        sys.exit("error: %s development files not found (pkg-config %s): %s"
                 % (what, pkg, HINT))
    return found


def curl_config():
    if not shutil.which("curl-config"):
        return None
    cflags, libs = run(["curl-config", "--cflags"]), run(["curl-config", "--libs"])
    return None if cflags is None or libs is None else (cflags, libs)


def cjson_default():
    for inc in ("/usr/include", "/usr/local/include"):
        if os.path.exists(os.path.join(inc, "cjson", "cJSON.h")):
            return ["-I" + os.path.join(inc, "cjson")], ["-lcjson"]
    return None


def plain_lib(lib):
    """Without pkg-config: -l<lib> when the linker finds it."""
    for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib",
              "/usr/local/lib"):
        if os.path.exists(os.path.join(d, "lib%s.so" % lib)):
            return [], ["-l" + lib]
    return None


def sources(folder):
    names = sorted(n for n in os.listdir(os.path.join(ROOT, folder)) if n.endswith(".c"))
    return [os.path.join(folder, n) for n in names]


def split_flags(flags):
    inc, libdirs, libs, other = [], [], [], []
    for f in flags:
        if f.startswith("-I"):
            inc.append(f[2:])
        elif f.startswith("-L"):
            libdirs.append(f[2:])
        elif f.startswith("-l"):
            libs.append(f[2:])
        else:
            other.append(f)
    return inc, libdirs, libs, other


# Py_LIMITED_API: the oldest CPython the abi3 build serves (3.10), as a hex
# version and as a wheel tag.
LIMITED_API = not sysconfig.get_config_var("Py_GIL_DISABLED")
LIMITED_API_HEX, LIMITED_API_TAG = "0x030A0000", "cp310"

WARNINGS = ["-Wall", "-Wextra", "-Wpedantic", "-Wshadow", "-Wstrict-prototypes",
            "-Wmissing-prototypes", "-Wformat=2", "-Wno-unused-parameter"]


class BuildExt(build_ext):
    """Finds the libraries at build time (not at import of setup.py, so that
    sdist and metadata work without them) and limits the exported symbols."""

    def build_extensions(self):
        curl = find_package("libcurl", "libcurl", curl_config)
        cjson = find_package("libcjson", "cJSON", cjson_default)
        flags = curl[0] + curl[1] + cjson[0] + cjson[1]
        for pkg, what, lib in OTHER_LIBS:
            cflags, libs_ = find_package(pkg, what, lambda lib=lib: plain_lib(lib))
            flags += cflags + libs_
        inc, libdirs, libs, other = split_flags(flags)
        for ext in self.extensions:
            ext.include_dirs += inc
            ext.library_dirs += libdirs
            ext.libraries += libs + ["pthread", "m"]
            ext.extra_compile_args += [f for f in other if not f.startswith("-Wl")]
            ext.extra_link_args += [f for f in other if f.startswith("-Wl")]
            if sys.platform.startswith("linux"):
                os.makedirs(self.build_temp, exist_ok=True)
                script = os.path.join(self.build_temp, "skinanalysis_core.map")
                with open(script, "w", encoding="utf-8") as fh:
                    fh.write("{ global: PyInit__core; local: *; };\n")
                ext.extra_link_args.append("-Wl,--version-script=" + script)
        super().build_extensions()


core_ext = Extension(
    "skinanalysis._core",
    sources=sources(os.path.join("core", "src")) + sources(os.path.join("bindings", "python")),
    # not core/src: the core's files find their internal headers beside
    # them, and the binding sees only skinanalysis.h
    include_dirs=[os.path.join("core", "include"), os.path.join("bindings", "python")],
    define_macros=[("SA_BUILDING_LIBRARY", None), ("_GNU_SOURCE", None)]
                  + ([("Py_LIMITED_API", LIMITED_API_HEX)] if LIMITED_API else []),
    py_limited_api=LIMITED_API,
    extra_compile_args=["-std=c11", "-fvisibility=hidden"] + WARNINGS,
    depends=[os.path.join("core", "include", "skinanalysis.h"),
             os.path.join("core", "src", "sa_internal.h"),
             os.path.join("core", "src", "sa_client.h"),
             os.path.join("bindings", "python", "sapy.h")],
)

setup(
    version=header_version(),
    ext_modules=[core_ext],
    cmdclass={"build_ext": BuildExt},
    options={"bdist_wheel": {"py_limited_api": LIMITED_API_TAG}} if LIMITED_API else {},
)
