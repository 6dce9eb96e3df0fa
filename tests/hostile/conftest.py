"""The hostile-server suite's hooks: which pairs run, and a summary of every
run's outcome, tasks, time and peak RSS at the end."""

import json
import os


def selected_pairs(session):
    """The (case, language) pairs of the tests that will run (after -k and
    other deselection)."""
    pairs = []
    for item in session.items:
        cs = getattr(item, "callspec", None)
        if getattr(item, "originalname", None) == "test_hostile" and cs is not None:
            pairs.append((cs.params["case"], cs.params["lang"]))
    return pairs


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    import sys
    mod = sys.modules.get("test_hostile") or next(
        (m for n, m in sys.modules.items() if n.endswith("test_hostile")
         and hasattr(m, "RESULTS")), None)
    if mod is None or not mod.RESULTS:
        return
    tr = terminalreporter
    tr.section("hostile server: outcome, tasks, seconds, peak RSS per case and language")
    langs = mod.LANGS
    tr.write_line("%-24s %s" % ("case", "".join("%-36s" % lang for lang in langs)))
    report = []
    for case in mod.SPECS:
        if not any((case, lang) in mod.RESULTS for lang in langs):
            continue
        cells = []
        for lang in langs:
            got = mod.RESULTS.get((case, lang))
            if got is None:
                cells.append("%-36s" % "-")
                continue
            run, bad = got
            cell = "%s %s t=%s %.0fs %.0fMB" % (
                "PASS" if not bad else "FAIL", run.outcome,
                run.counts.get("tasks_created"), run.wall, run.maxrss_kb / 1024)
            cells.append("%-36s" % cell)
            report.append({"case": case, "lang": lang, "pass": not bad,
                           "outcome": run.outcome, "tasks": run.counts.get("tasks_created"),
                           "seconds": round(run.wall, 2),
                           "peak_rss_mb": round(run.maxrss_kb / 1024, 1),
                           "problems": bad})
        tr.write_line("%-24s %s" % (case, "".join(cells)))
    wall = getattr(config, "_hostile_wall", None)
    if wall is not None:
        tr.write_line("all runs: %.0f s" % wall)
    out = os.environ.get("SA_HOSTILE_REPORT")
    if out:
        with open(out, "w") as f:
            json.dump(report, f, indent=1)
