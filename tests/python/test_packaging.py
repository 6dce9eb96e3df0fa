"""The packaging files agree with the source tree.

The rockspec lists the C sources by name (LuaRocks' builtin backend has no
globs) and MANIFEST.in decides what the sdist carries: a file added to
core/src that either misses would build here and fail for a user of
`luarocks make` or of the sdist.
"""

import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def rel(paths):
    return sorted(os.path.relpath(p, ROOT) for p in paths)


def test_rockspec_lists_every_c_source():
    specs = glob.glob(os.path.join(ROOT, "skinanalysis-*.rockspec"))
    assert len(specs) == 1, specs
    with open(specs[0], encoding="utf-8") as fh:
        text = fh.read()
    block = re.search(r"sources\s*=\s*\{(.*?)\}", text, re.S)
    assert block, "no sources list in the rockspec"
    listed = sorted(re.findall(r'"([^"]+\.c)"', block.group(1)))
    expected = rel(glob.glob(os.path.join(ROOT, "core", "src", "*.c"))
                   + glob.glob(os.path.join(ROOT, "bindings", "lua", "*.c")))
    assert listed == expected


def test_rockspec_version_matches_header():
    with open(os.path.join(ROOT, "core", "include", "skinanalysis.h"), encoding="utf-8") as fh:
        version = re.search(r'#define\s+SA_VERSION\s+"([^"]+)"', fh.read()).group(1)
    specs = glob.glob(os.path.join(ROOT, "skinanalysis-*.rockspec"))
    assert os.path.basename(specs[0]).startswith("skinanalysis-%s-" % version)


def test_manifest_carries_the_extension_sources():
    with open(os.path.join(ROOT, "MANIFEST.in"), encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    for pattern in ("core/src/*.c", "core/src/*.h", "bindings/python/*.c",
                    "bindings/python/*.h", "core/include/skinanalysis.h"):
        assert any(pattern in line for line in lines if line.startswith("include")), pattern


def test_bindings_use_only_the_public_header():
    """The bindings translate types and errors; every rule is the core's.
    So no file under bindings/ includes sa_internal.h or touches cJSON
    (issue 13: the core's parser is the only one), and neither build puts
    core/src on the bindings' include path."""
    offenders = []
    for dirpath, _, files in os.walk(os.path.join(ROOT, "bindings")):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
            if re.search(r"sa_internal\.h|sa_client\.h|cJSON", text):
                offenders.append(os.path.relpath(path, ROOT))
    assert offenders == [], offenders
    specs = glob.glob(os.path.join(ROOT, "skinanalysis-*.rockspec"))
    with open(specs[0], encoding="utf-8") as fh:
        incdirs = re.search(r"incdirs\s*=\s*\{([^}]*)\}", fh.read()).group(1)
    assert '"core/src"' not in incdirs
    with open(os.path.join(ROOT, "setup.py"), encoding="utf-8") as fh:
        setup = fh.read()
    assert 'os.path.join("core", "src")]' not in setup
    assert 'os.path.join("core", "src"),' not in setup
    with open(os.path.join(ROOT, "CMakeLists.txt"), encoding="utf-8") as fh:
        cmake = fh.read()
    lua = re.search(r"target_include_directories\(sa_lua[^)]*\)", cmake)
    assert lua and "core/src" not in lua.group(0)
