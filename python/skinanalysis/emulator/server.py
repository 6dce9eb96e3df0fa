"""Running the emulator: ``serve`` (CLI, foreground) and ``Emulator``
(in-process, on a background thread)."""

import asyncio
import json
import signal
import sys
import threading

from .app import App
from .config import Config
from .control import advance_clock
from .httpserver import HTTPServer

SWEEP_SECONDS = 0.2


def _sweep(state):
    """Settle the running tasks at the clock's time; return the seconds until
    the next sweep: the next task end (webhook deliveries go out on time), at
    most SWEEP_SECONDS (expiries, timeouts). A stopped test clock moves only
    by advance_clock, which settles the tasks itself: then the plain period."""
    with state.lock:
        state.sweep()
        nxt = state.next_done_at()
        now = state.clock.monotonic()
        test = state.clock.test
    if nxt is None or test:
        return SWEEP_SECONDS
    return min(SWEEP_SECONDS, max(0.002, nxt - now + 0.001))


async def _sweeper(app):
    delay = SWEEP_SECONDS
    while True:
        await asyncio.sleep(delay)
        delay = _sweep(app.state)


async def _start(app):
    server = HTTPServer(app.handle, app.on_error, time=app.state.clock.time)
    port = await server.start(app.config.host, app.config.port)
    host = app.config.host
    shown = "[%s]" % host if ":" in host else host
    app.default_base = "http://%s:%d" % (shown, port)
    app.state.own_netlocs.update({"%s:%d" % (shown, port), "127.0.0.1:%d" % port,
                                  "localhost:%d" % port, "[::1]:%d" % port})
    loop = asyncio.get_running_loop()
    app.state.webhooks.attach(loop)
    sweeper = loop.create_task(_sweeper(app))
    return server, sweeper, port


async def _stop(app, server, sweeper):
    sweeper.cancel()
    try:
        await sweeper
    except asyncio.CancelledError:
        pass
    await app.state.webhooks.close()
    await server.close()


def serve(config, out=None):
    """Serve in the foreground until SIGINT/SIGTERM. Prints the listening
    line first (flushed)."""
    out = out or sys.stdout

    async def main():
        app = App(config)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        server, sweeper, _ = await _start(app)
        print("listening on " + app.default_base, file=out, flush=True)
        await stop.wait()
        await _stop(app, server, sweeper)

    asyncio.run(main())
    return 0


class Emulator:
    """The emulator on a background thread, for tests and notebooks::

        with Emulator(task_seconds=0) as emu:
            requests.post(emu.base_url + "/s2s/v2.1/file/skin-analysis", ...)
            emu.counters["tasks_succeeded"]

    Keyword arguments are the CLI options (see ``Config``). The host
    defaults to 127.0.0.1 and the port to 0 (a free port). With
    ``test_clock=True`` the emulator's time moves only by ``advance_clock``
    (see clock.py and docs/emulator.md).
    """

    def __init__(self, **options):
        self.config = Config(**options)
        self.app = App(self.config)
        self._loop = None
        self._thread = None
        self._ready = threading.Event()
        self._stopped = None
        self._error = None
        self.port = None
        self.base_url = None

    # -- life cycle ------------------------------------------------------------------

    def start(self):
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name="skinanalysis-emulator",
                                        daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self

    def _run(self):
        async def main():
            try:
                server, sweeper, port = await _start(self.app)
            except Exception as exc:
                self._error = exc
                self._ready.set()
                return
            self._loop = asyncio.get_running_loop()
            self._stopped = asyncio.Event()
            self.port = port
            self.base_url = self.app.default_base
            self._ready.set()
            await self._stopped.wait()
            await _stop(self.app, server, sweeper)

        asyncio.run(main())

    def stop(self):
        if self._thread is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._stopped.set)
            except RuntimeError:
                pass
        self._thread.join(10)
        self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- inspection ------------------------------------------------------------------

    @property
    def state(self):
        """The live ``State`` (hold ``emu.state.lock`` while touching it)."""
        return self.app.state

    @property
    def log(self):
        """A snapshot list of request records (oldest first)."""
        return self.app.state.snapshot_log()

    @property
    def counters(self):
        """A snapshot dict of the counters (see docs/emulator.md)."""
        return self.app.state.snapshot_counters()

    @property
    def host_port(self):
        """(host, port) the server listens on."""
        return self.config.host, self.port

    @property
    def keys(self):
        return self.config.keys

    @property
    def api_key(self):
        """The first configured API key."""
        return self.config.keys[0]

    @property
    def webhook_secret(self):
        """The webhook signing secret ("whsec_<base64>")."""
        return self.config.webhook_secret

    @property
    def webhook_urls(self):
        """The webhook URLs in use (set with ``set_webhook_urls``)."""
        with self.app.state.lock:
            return list(self.app.state.webhooks.urls)

    @property
    def webhook_log(self):
        """A snapshot list of delivery records (see docs/emulator.md)."""
        with self.app.state.lock:
            return self.app.state.webhooks.snapshot()["deliveries"]

    # -- control -------------------------------------------------------------------------

    def set_scenario(self, spec):
        """Install a fault scenario: a dict, a list of fault rules, a JSON
        string or a path to a JSON file. ``None`` clears it."""
        if isinstance(spec, str):
            spec = json.loads(spec) if spec.lstrip().startswith(("{", "[")) else _load(spec)
        with self.app.state.lock:
            self.app.set_scenario(spec)

    def clear_scenario(self):
        self.set_scenario(None)

    def reset(self):
        """Forget files, tasks, log, counters, balances and rate windows;
        reinstall the configured scenario."""
        self.app.reset()

    def host_public(self, name, data, content_type="application/octet-stream"):
        """Serve ``data`` at ``/_public/<name>``; returns its URL (usable as
        src_file_url)."""
        with self.app.state.lock:
            self.app.state.public_files[name] = (content_type, bytes(data))
        return "%s/_public/%s" % (self.base_url, name)

    def set_engine_error(self, task_id, code, message=None):
        """Make a running task end with engine error ``code``."""
        with self.app.state.lock:
            self.app.state.force_error(self.app.state.tasks[task_id], code, message)

    def queue_engine_error(self, code, message=None):
        """Make the next created task end with engine error ``code``."""
        with self.app.state.lock:
            self.app.state.forced_next.append((code, message))

    def set_task_results(self, task_id, results):
        """Answer ``results`` as ``data.results`` once task ``task_id``
        succeeds (None: the task's own results again).  In its strings
        "{base}" is the server's base URL and "{result:NAME}" the signed
        URL of the task's result file NAME."""
        with self.app.state.lock:
            self.app.state.tasks[task_id].results_override = results

    def finish_task(self, task_id):
        """Let a running task's engine finish now."""
        with self.app.state.lock:
            task = self.app.state.tasks[task_id]
            now = self.app.state.clock.monotonic()
            task.done_at = min(task.done_at, now)
            self.app.state.advance(task, now)

    @property
    def clock(self):
        """The emulator's clock (``clock.Clock``): ``clock.test``,
        ``clock.set_test(on)``, ``clock.monotonic()``, ``clock.time()``."""
        return self.app.state.clock

    def advance_clock(self, seconds):
        """Move the emulator's clock forward by ``seconds`` and settle the
        running tasks at the new time (see ``Emulator(test_clock=True)``)."""
        with self.app.state.lock:
            advance_clock(self.app.state, seconds)

    def set_webhook_urls(self, urls):
        """Deliver webhooks to these loopback http URLs from now on (a
        sequence or a comma-separated string; empty stops delivery).
        Raises ValueError for any other URL."""
        with self.app.state.lock:
            self.app.state.webhooks.set_urls(urls)

    def set_units(self, key, units):
        """The key's Api balance becomes one ApiSubscription grant of units
        (its non-Api grants stay)."""
        with self.app.state.lock:
            self.app.state.set_units(key, units)

    def set_grants(self, key, grants):
        """Replace the key's grants: (type, amount[, days]) tuples."""
        with self.app.state.lock:
            self.app.state.grants[key] = self.app.state.make_grants(grants)

    def grants(self, key=None):
        with self.app.state.lock:
            return self.app.state.public_grants(key or self.api_key)

    def units(self, key=None):
        with self.app.state.lock:
            return self.app.state.balance(key or self.api_key)

    def task(self, task_id):
        """A dict describing a task (status, polls, max gap, ...)."""
        with self.app.state.lock:
            task = self.app.state.tasks[task_id]
            self.app.state.advance(task, self.app.state.clock.monotonic())
            return task.public()


def _load(path):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)
