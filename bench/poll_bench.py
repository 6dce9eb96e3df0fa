#!/usr/bin/env python3
"""bench/poll_bench.py - the client side of bench/run part 7 (polling).

    poll_bench.py URL IMAGE N INFLIGHT STRATEGY [--window MAX:MS] [--webhooks SECRET]

Runs N analyses (INFLIGHT at a time) with the Python package, poll_strategy
STRATEGY ("fixed" or "learned").  --window tells the client the rate window
the emulator was given.  --webhooks starts a loopback receiver, points the
emulator's deliveries at it (POST /_control/webhooks), verifies each
delivery and calls Client.notify (from the thread that drives the client:
the receiver only queues the task id and wakes the client up).  Prints one
JSON line: {"ok": .., "failed": .., "wall_s": .., "deliveries": ..}.  The
figures themselves come from the emulator (bench/run reads
/_control/tasks and /_control/counters).
"""

import argparse
import http.server
import json
import queue
import threading
import time
import urllib.request

import skinanalysis


def start_receiver(secret, client, inbox):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            try:
                d = skinanalysis.verify_webhook(secret, dict(self.headers.items()), body)
            except skinanalysis.Error:
                self.send_response(400)
                self.end_headers()
                return
            inbox.put(d.task_id)
            client.wakeup()
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("image")
    ap.add_argument("n", type=int)
    ap.add_argument("inflight", type=int)
    ap.add_argument("strategy", choices=("fixed", "learned"))
    ap.add_argument("--window", default=None, metavar="MAX:MS")
    ap.add_argument("--webhooks", default=None, metavar="SECRET")
    args = ap.parse_args()

    opts = {}
    if args.window:
        wmax, wms = args.window.split(":")
        opts.update(rate_window_max=int(wmax), rate_window_ms=int(wms))
    client = skinanalysis.Client("emulator-key", base_url=args.url,
                                 poll_strategy=args.strategy,
                                 webhooks=bool(args.webhooks), deadline=1200,
                                 close_timeout=60, **opts)
    inbox = queue.Queue()
    srv = None
    deliveries = 0
    if args.webhooks:
        srv = start_receiver(args.webhooks, client, inbox)
        req = urllib.request.Request(
            args.url + "/_control/webhooks", method="POST",
            data=json.dumps({"urls": ["http://127.0.0.1:%d/hook" % srv.server_port]}).encode())
        urllib.request.urlopen(req, timeout=10).read()

    t0 = time.monotonic()
    running, ok, failed, submitted = [], 0, 0, 0
    with client:
        while submitted < args.n or running:
            while submitted < args.n and len(running) < args.inflight:
                running.append(client.submit(args.image, ["pore", "wrinkle"]))
                submitted += 1
            try:
                client.step(0.05)
            except skinanalysis.WaitInterrupted:
                pass
            while True:
                try:
                    task_id = inbox.get_nowait()
                except queue.Empty:
                    break
                deliveries += 1
                client.notify(task_id)
            for job in [j for j in running if j.done()]:
                running.remove(job)
                if job.exception() is None:
                    ok += 1
                else:
                    failed += 1
    wall = time.monotonic() - t0
    if srv is not None:
        srv.shutdown()
    print(json.dumps({"ok": ok, "failed": failed, "wall_s": wall, "deliveries": deliveries}))


if __name__ == "__main__":
    main()
