"""Answers a hostile or broken server may send, through the whole client:
strings a NUL would cut, ids that are no ids (issue 12)."""

import pytest

import skinanalysis
from .sa_helpers import FAST, SD_IMAGE


def _client(emu, **extra):
    opts = dict(FAST, max_retries=1)
    opts.update(extra)
    return skinanalysis.Client(emu.api_key, base_url=emu.base_url, **opts)


def test_task_id_cut_by_a_nul_never_polls_another_task(emu):
    """"<A>\\u0000/../../other" once made the client poll task A and report
    A's result as its own."""
    with _client(emu) as c:
        other = c.submit(SD_IMAGE, ["pore"])
        other.wait(10)
        emu.set_scenario([{"endpoint": "task_create", "fault": "patch",
                           "set": {"data.task_id": other.task_id + "\u0000/../../other"}}])
        polls_before = emu.counters["requests"].get("task_status", 0)
        with pytest.raises(skinanalysis.AmbiguousTaskError) as info:
            c.analyze(SD_IMAGE, ["pore"])
    assert "NUL" in str(info.value)
    assert emu.counters["requests"].get("task_status", 0) == polls_before


def test_file_id_cut_by_a_nul_never_creates_a_task(emu):
    """"<F>\\u0000EVIL" once created a billed task on file F."""
    with _client(emu) as c:
        first = c.submit(SD_IMAGE, ["pore"])
        first.wait(10)
        tasks_before = emu.counters["tasks_created"]
        emu.set_scenario([{"endpoint": "file_create", "fault": "patch",
                           "set": {"data.files.0.file_id": first.file_id + "\u0000EVIL"}}])
        with pytest.raises(skinanalysis.ProtocolError):
            c.analyze(SD_IMAGE, ["pore"])
    assert emu.counters["tasks_created"] == tasks_before
    assert emu.counters["requests"].get("task_create", 0) == 1


def test_concern_cut_by_a_nul_is_no_result(emu):
    """"wrin\\u0000kle" was read as a concern "wrin"."""
    emu.set_scenario([{"endpoint": "task_status", "fault": "patch",
                       "set": {"data.results.output.0.type": "wrin\u0000kle"}}])
    with _client(emu) as c:
        with pytest.raises(skinanalysis.ProtocolError):
            c.analyze(SD_IMAGE, ["wrinkle"])


@pytest.mark.parametrize("task_id", ["..", "a b", "a?b=1", "x\u00e9"])
def test_task_id_of_other_characters_is_unreadable(emu, task_id):
    emu.set_scenario([{"endpoint": "task_create", "fault": "patch",
                       "set": {"data.task_id": task_id}}])
    with _client(emu) as c:
        with pytest.raises(skinanalysis.AmbiguousTaskError):
            c.analyze(SD_IMAGE, ["pore"])
