#!/usr/bin/env python3
"""Load test of the emulator (standard library only).

    python3 tests/emulator/loadtest.py [--connections 1000] [--seconds 10] [--procs 1]

Starts ``scripts/emulator`` (rate limits off, tasks that never finish) as a
separate process, creates one task, then opens ``--connections`` keep-alive
connections (spread over ``--procs`` client processes) that each poll the
task status in a loop, one request in flight per connection. Prints the
status requests per second served, latency percentiles and errors.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEY = "emulator-key"


def _post(base, path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": "Bearer " + KEY,
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as resp:
        return json.loads(resp.read())


def create_task(base):
    with open(os.path.join(REPO, "tests", "fixtures", "portrait_sd.jpg"), "rb") as fh:
        data = fh.read()
    slot = _post(base, "/s2s/v2.1/file/skin-analysis", {"files": [
        {"content_type": "image/jpeg", "file_name": "a.jpg", "file_size": len(data)}]})
    put = slot["data"]["files"][0]["requests"][0]
    req = urllib.request.Request(put["url"], data=data, method="PUT", headers=put["headers"])
    urllib.request.urlopen(req).read()
    task = _post(base, "/s2s/v2.1/task/skin-analysis",
                 {"src_file_id": slot["data"]["files"][0]["file_id"], "dst_actions": ["wrinkle"]})
    return task["data"]["task_id"]


async def _worker(host, port, request, stop_at, stats, ready):
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        stats["connect_errors"] += 1
        return
    stats["connected"] += 1
    await ready.wait()
    latencies = stats["latencies"]
    try:
        while time.monotonic() < stop_at:
            t0 = time.monotonic()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                stats["bad_status"] += 1
            stats["requests"] += 1
            latencies.append(time.monotonic() - t0)
    except (OSError, asyncio.IncompleteReadError):
        stats["io_errors"] += 1
    finally:
        writer.close()


def client_process(host, port, task_id, connections, seconds, queue):
    async def main():
        request = ("GET /s2s/v2.1/task/skin-analysis/%s HTTP/1.1\r\nHost: %s:%d\r\n"
                   "Authorization: Bearer %s\r\n\r\n" % (task_id, host, port, KEY)).encode()
        stats = {"requests": 0, "bad_status": 0, "io_errors": 0, "connect_errors": 0,
                 "connected": 0, "latencies": []}
        ready = asyncio.Event()
        start = time.monotonic() + 5 + seconds  # generous connect phase, then measured run
        workers = [asyncio.create_task(_worker(host, port, request, start, stats, ready))
                   for _ in range(connections)]
        while stats["connected"] + stats["connect_errors"] < connections:
            await asyncio.sleep(0.02)
        t0 = time.monotonic()
        ready.set()
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - t0
        snapshot = dict(stats, latencies=sorted(stats["latencies"]), elapsed=elapsed)
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        return snapshot

    queue.put(asyncio.run(main()))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--connections", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--procs", type=int, default=1, help="client processes")
    args = p.parse_args(argv)

    server = subprocess.Popen([os.path.join(REPO, "scripts", "emulator"), "--port", "0",
                               "--rate-limit", "off", "--task-seconds", "3600",
                               "--poll-window", "0", "--log-max", "1000"],
                              stdout=subprocess.PIPE, text=True)
    try:
        base = server.stdout.readline().split()[-1]
        host, port = base[len("http://"):].rsplit(":", 1)
        port = int(port)
        task_id = create_task(base)
        queue = multiprocessing.Queue()
        per = [args.connections // args.procs + (i < args.connections % args.procs)
               for i in range(args.procs)]
        procs = [multiprocessing.Process(target=client_process,
                                         args=(host, port, task_id, n, args.seconds, queue))
                 for n in per]
        for proc in procs:
            proc.start()
        results = [queue.get() for _ in procs]
        for proc in procs:
            proc.join()
    finally:
        server.terminate()
        server.wait(10)

    total = sum(r["requests"] for r in results)
    elapsed = max(r["elapsed"] for r in results)
    lat = sorted(x for r in results for x in r["latencies"])

    def pct(q):
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else float("nan")

    print("connections: %d (%d client process%s), connected: %d, connect errors: %d"
          % (args.connections, args.procs, "es" if args.procs > 1 else "",
             sum(r["connected"] for r in results), sum(r["connect_errors"] for r in results)))
    print("status requests: %d in %.1f s = %.0f req/s" % (total, elapsed, total / elapsed))
    print("latency ms: p50 %.1f, p90 %.1f, p99 %.1f" % (pct(0.5), pct(0.9), pct(0.99)))
    print("non-200: %d, I/O errors: %d" % (sum(r["bad_status"] for r in results),
                                          sum(r["io_errors"] for r in results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
