"""One worker process of the shared-rate-budget runs (tests/python/
test_rate_scope.py, bench/run's "rate scope" part): N analyses on one key,
started together at a given wall-clock time, written out as JSON.

    python rate_scope_worker.py BASE_URL KEY SCOPE N START_AT OUT.json [OPTIONS_JSON]
"""

import json
import sys
import time

import skinanalysis


def main(argv):
    base_url, key, scope, n, start_at, out = argv[1:7]
    extra = json.loads(argv[7]) if len(argv) > 7 else {}
    image = extra.pop("image")
    n = int(n)
    client = skinanalysis.Client(key, base_url=base_url, rate_limit_scope=scope,
                                 close_timeout=60.0, **extra)
    delay = float(start_at) - time.time()
    if delay > 0:
        time.sleep(delay)
    t0 = time.time()
    jobs = [client.submit(image) for _ in range(n)]
    done = []
    for job in jobs:
        try:
            res = job.wait()
            done.append({"ok": True, "task_id": res.task_id})
        except skinanalysis.Error as exc:
            done.append({"ok": False, "error": type(exc).__name__,
                         "task_id": getattr(exc, "task_id", None), "msg": str(exc)})
    t1 = time.time()
    client.close()
    with open(out, "w") as f:
        json.dump({"start": t0, "end": t1, "results": done}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))


def run_fleet(emu, scope, procs, per_proc, options, image, env=None, timeout=600,
              during=None, during_pids=False):
    """Run `procs` workers of `per_proc` analyses each against `emu` (an
    started Emulator) with `scope`; returns their figures: 429s, total
    time, the floor (API requests / rate, or the long window's where it
    binds), results.  `during(emu)` (`during(emu, worker_pids)` with
    during_pids), when given, runs in a thread while
    the workers run (the Redis restart test)."""
    import os
    import subprocess
    import tempfile

    emu.reset()
    opts = dict(options, image=image)
    start_at = time.time() + 1.5 + 0.1 * procs
    with tempfile.TemporaryDirectory() as tmp:
        outs = [os.path.join(tmp, "w%d.json" % i) for i in range(procs)]
        ps = [subprocess.Popen([sys.executable, os.path.abspath(__file__), emu.base_url,
                                emu.api_key, scope, str(per_proc), repr(start_at), out,
                                json.dumps(opts)], env=env)
              for out in outs]
        side = None
        if during is not None:
            import threading
            args = (emu, [p.pid for p in ps]) if during_pids else (emu,)
            side = threading.Thread(target=during, args=args, daemon=True)
            side.start()
        for p in ps:
            p.wait(timeout=timeout)
        if side is not None:
            side.join(timeout=60)
        reports = []
        for p, out in zip(ps, outs):
            if p.returncode != 0 or not os.path.exists(out):
                raise RuntimeError("worker failed: exit %s" % p.returncode)
            with open(out) as f:
                reports.append(json.load(f))
    counters = emu.counters
    api = [r for r in emu.log if r["path"].startswith("/s2s/")]
    rate = float(emu.config.rate_qps)
    start = min(r["start"] for r in reports)
    total = max(r["end"] for r in reports) - start
    n = len(api)
    floor = max(n - rate, 0) / rate
    wmax, wsec = emu.config.rate_window_max, emu.config.rate_window_seconds
    if wmax and n > wmax:
        # the long window binds: the n-th request cannot go before
        # floor((n-1)/wmax) windows have passed
        floor = max(floor, ((n - 1) // wmax) * wsec)
    # the rate-bound span: first to last API request the emulator logged
    span = (api[-1]["time"] - api[0]["time"]) if n > 1 else 0.0
    results = [r for rep in reports for r in rep["results"]]
    with emu.state.lock:
        tasks = dict(emu.state.tasks)
        unseen = [tid for tid, t in tasks.items() if not t.terminal_seen]
    return {"scope": scope, "procs": procs, "per_proc": per_proc,
            "responses_429": counters.get("responses_429", 0),
            "api_requests": n, "total_s": total, "floor_s": floor,
            "ratio": total / floor if floor else float("inf"),
            "span_s": span, "span_ratio": span / floor if floor else float("inf"),
            "ok": sum(1 for r in results if r["ok"]),
            "failed": [r for r in results if not r["ok"]],
            "tasks_created": len(tasks), "tasks_unpolled": unseen,
            "task_ids": [r["task_id"] for r in results if r.get("task_id")]}
