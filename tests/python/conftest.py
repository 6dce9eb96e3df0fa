"""Fixtures for the skinanalysis package tests.

Every test talks to the in-process emulator (skinanalysis.emulator.Emulator)
on a free loopback port; nothing leaves the machine and no real key is used.
The package is imported from the source tree when the extension was built in
place (``python3 setup.py build_ext --inplace``), else from the installed
copy (``pip install .``).
"""

import glob
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYDIR = os.path.join(REPO, "python")
if glob.glob(os.path.join(PYDIR, "skinanalysis", "_core*.so")):
    sys.path.insert(0, PYDIR)
sys.path.append(os.path.join(REPO, "tests"))

import skinanalysis  # noqa: E402
from skinanalysis.emulator import Emulator  # noqa: E402
from emu_factory import emulator_factory  # noqa: E402

from .sa_helpers import FAST, SECRET_KEY  # noqa: E402


@pytest.fixture(scope="session")
def shared_emulator():
    with Emulator(task_seconds=0, rate_limit=False,
                  keys=("emulator-key", SECRET_KEY)) as emu:
        yield emu


@pytest.fixture
def emu(shared_emulator):
    """The session's emulator, reset: tasks finish at once, no rate limits,
    an empty log and no scenario."""
    shared_emulator.clear_scenario()
    shared_emulator.reset()
    return shared_emulator


@pytest.fixture
def make_emulator():
    """Start an emulator with particular options; stopped at teardown."""
    yield from emulator_factory(Emulator, rate_limit=False)


@pytest.fixture
def client(emu):
    with skinanalysis.Client(emu.api_key, base_url=emu.base_url, **FAST) as c:
        yield c
