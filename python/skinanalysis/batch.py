"""Batches: ``analyze_many`` and its progress display.

Many images go through one client: at most ``concurrency`` analyses run at
a time, the core's limiter keeps every request under the API's rate limits
(5 requests/s, 250 per 300 s), and every task that was created is polled to
its end -- also on Ctrl-C, where the first interrupt stops new submissions
and waits for the running ones, and a second one abandons them (their task
ids are logged, and each is reported as a CancelledError carrying its
task id, so that it can be resumed later) before KeyboardInterrupt is
raised again.

An item may also be ``ResumeTask(task_id)``: the task that exists already
is resumed (``Client.resume_job``) instead of analysing an image, so a
batch run again after a crash or a give-up creates no second task.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Iterable, Optional

from . import actions as _actions
from ._config import logger
from .errors import Error

#: How long one step of the batch loop may wait (ms): also the longest
#: Ctrl-C has to wait to be noticed.
STEP_MS = 100


class ResumeTask:
    """A batch item that resumes an existing task by its id instead of
    analysing an image (nothing is created or billed anew)."""

    __slots__ = ("task_id",)

    def __init__(self, task_id: str) -> None:
        if not isinstance(task_id, str):
            raise TypeError("task_id must be a str")
        self.task_id = task_id

    def __repr__(self) -> str:
        return "ResumeTask(%r)" % self.task_id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ResumeTask) and other.task_id == self.task_id

    def __hash__(self) -> int:
        return hash(("ResumeTask", self.task_id))


def resume_kwargs(request: dict) -> dict:
    """The keyword arguments of ``resume_job`` among those of ``submit``."""
    return {k: request[k] for k in ("version", "deadline") if k in request}


class Progress:
    """tqdm when it is installed (``pip install 'skinanalysis[progress]'``),
    else a one-line counter on a terminal's stderr; a callable
    ``progress(done, total)`` is called instead; False shows nothing."""

    def __init__(self, progress: Any, total: int) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self._callback: Optional[Callable[[int, int], Any]] = None
        self._bar: Any = None
        self._text = False
        if callable(progress):
            self._callback = progress
        elif progress and total:
            try:
                from tqdm import tqdm
            except ImportError:
                self._text = sys.stderr.isatty()
            else:
                self._bar = tqdm(total=total, unit="image", desc="skinanalysis")

    def advance(self, ok: bool) -> None:
        self.done += 1
        if not ok:
            self.failed += 1
        if self._bar is not None:
            self._bar.update(1)
            if self.failed:
                self._bar.set_postfix(failed=self.failed, refresh=False)
        elif self._callback is not None:
            self._callback(self.done, self.total)
        elif self._text:
            sys.stderr.write("\rskinanalysis: %d/%d done, %d failed"
                             % (self.done, self.total, self.failed))
            sys.stderr.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._text:
            sys.stderr.write("\n")
            self._text = False


class _Batch:
    """The state of one synchronous batch on a Client."""

    def __init__(self, client: Any, items: list, actions: _actions.Actions,
                 concurrency: int, progress: Any,
                 on_result: Optional[Callable[[int, Any, Any], Any]],
                 raise_on_error: bool, request: dict) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.client = client
        self.items = items
        self.actions = actions
        self.concurrency = concurrency
        self.on_result = on_result
        self.raise_on_error = raise_on_error
        self.request = request
        self.results: list = [None] * len(items)
        self.pending: dict = {}  # Job -> index
        self.next = 0
        self.stop = False
        self.failure: Optional[BaseException] = None
        self.bar = Progress(progress, len(items))

    def finish(self, index: int, outcome: Any) -> None:
        self.results[index] = outcome
        failed = isinstance(outcome, BaseException)
        if failed and self.raise_on_error and self.failure is None:
            self.failure = outcome
            self.stop = True
        self.bar.advance(not failed)
        if self.on_result is not None:
            self.on_result(index, self.items[index], outcome)

    def submit_more(self) -> None:
        while (not self.stop and self.next < len(self.items)
               and len(self.pending) < self.concurrency):
            index = self.next
            self.next += 1
            item = self.items[index]
            try:
                if isinstance(item, ResumeTask):
                    job = self.client.resume_job(item.task_id,
                                                 **resume_kwargs(self.request))
                else:
                    job = self.client.submit(item, self.actions, **self.request)
            except Error as exc:  # validation: nothing was sent
                self.finish(index, exc)
                continue
            self.pending[job] = index

    def collect(self) -> None:
        for job in [j for j in self.pending if j.done()]:
            index = self.pending.pop(job)
            try:
                outcome: Any = job.result()
            except Error as exc:
                outcome = exc
            self.finish(index, outcome)

    def step(self) -> None:
        self.client.step(STEP_MS / 1000.0)
        self.collect()

    def run(self) -> list:
        try:
            while True:
                self.submit_more()
                if not self.pending:
                    break
                self.step()
        except KeyboardInterrupt:
            self.drain_after_interrupt()
            raise
        finally:
            self.bar.close()
        if self.failure is not None:
            raise self.failure
        return self.results

    def drain_after_interrupt(self) -> None:
        self.stop = True
        if not self.pending:
            return
        logger.warning("interrupted: waiting for %d running analyses to end "
                       "(Ctrl-C again abandons them)", len(self.pending))
        try:
            while self.pending:
                self.step()
        except KeyboardInterrupt:
            ids = sorted(j.task_id for j in self.pending if j.task_id)
            for job in list(self.pending):
                job.abandon()
            logger.warning("abandoned %d running analyses; these tasks may still "
                           "be billed: %s", len(self.pending),
                           ", ".join(ids) if ids else "(none created yet)")
            # each ends as a CancelledError with its task id: reported like
            # any outcome (the CLI records it, to be resumed later)
            self.collect()
            self.pending.clear()


def run_batch(client: Any, items: list, actions: _actions.Actions, *,
              concurrency: int, progress: Any,
              on_result: Optional[Callable[[int, Any, Any], Any]],
              raise_on_error: bool, request: dict) -> list:
    """``Client.analyze_many``: see ``analyze_many``."""
    return _Batch(client, items, actions, concurrency, progress, on_result,
                  raise_on_error, request).run()


def analyze_many(images: Iterable[Any], actions: _actions.Actions = None, *,
                 client: Any = None, concurrency: int = 16, progress: Any = True,
                 on_result: Optional[Callable[[int, Any, Any], Any]] = None,
                 raise_on_error: bool = False, api_key: Optional[str] = None,
                 base_url: Optional[str] = None, **kwargs: Any) -> list:
    """Analyse many images, at most ``concurrency`` at a time.

    Returns one entry per image, in input order: its Result, or the
    exception it failed with (one failure does not stop the batch unless
    ``raise_on_error``, which stops new submissions, lets the running ones
    end and raises the first failure).  An item that is a
    ``ResumeTask(task_id)`` resumes that existing task instead.  ``on_result(index, image, outcome)``
    is called as each one ends.  ``progress``: True (tqdm or a counter),
    False, or ``progress(done, total)``.  ``kwargs`` are those of
    ``Client.submit`` (``format``, ``hd``, ``version``, ...).  Without
    ``client`` a Client is made from ``api_key``/``base_url`` or the
    environment, and closed at the end.
    """
    if client is not None:
        return client.analyze_many(images, actions, concurrency=concurrency,
                                   progress=progress, on_result=on_result,
                                   raise_on_error=raise_on_error, **kwargs)
    from .client import Client
    with Client(api_key, base_url=base_url) as own:
        return own.analyze_many(images, actions, concurrency=concurrency,
                                progress=progress, on_result=on_result,
                                raise_on_error=raise_on_error, **kwargs)


__all__ = ["analyze_many", "Progress", "ResumeTask", "STEP_MS"]
