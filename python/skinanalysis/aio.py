"""asyncio: ``AsyncClient`` and ``AsyncJob``.

The client's sockets and timer are handed to the running event loop through
the core's event hooks (``loop.add_reader`` / ``add_writer`` /
``call_later``): no thread per call and no executor.  Each job's end (the
core's job callback) resolves an asyncio Future.  It works wherever an
event loop runs, including a Jupyter cell (``await client.analyze(...)``).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Callable, Iterable, Mapping, Optional, Union

from . import _config
from . import actions as _actions
from ._config import logger
from ._native import _core
from .account import mark_deleted
from .batch import Progress, ResumeTask, resume_kwargs
from .client import _ClientBase, _JobBase, _kept_source, request_kwargs
from .errors import Error
from .results import Result

_TERMINAL = frozenset({_core.JOB_DONE, _core.JOB_FAILED, _core.JOB_CANCELLED})
_DRAIN_POLL = 0.05


def _resolver(future: "asyncio.Future[None]") -> Callable[[Any, int], None]:
    """The core job callback of one AsyncJob: resolve its future at the end."""
    def on_state(job: Any, state: int) -> None:
        if state in _TERMINAL and not future.done():
            future.set_result(None)
    return on_state


async def _end_or_cancel(job: Any, future: "asyncio.Future[None]",
                         timeout: Optional[float], what: str,
                         task_id: Optional[str] = None) -> None:
    """Wait until the core job resolves future (see _resolver).  A helper
    job (a fetch, an account call) is cancelled when time is up (then
    WaitTimeout "<what> after <timeout> s") or when the awaiting task is
    cancelled."""
    if job.done:
        return
    try:
        await asyncio.wait_for(asyncio.shield(future), timeout)
    except asyncio.TimeoutError:
        job.cancel()
        raise _core.error_for(_core.ERR_WAIT_TIMEOUT, "%s after %.3g s" % (what, timeout),
                              task_id=task_id) from None
    except BaseException:
        job.cancel()   # the awaiting task was cancelled: stop too
        raise


class AsyncJob(_JobBase):
    """One analysis started by ``AsyncClient.submit``; ``await job`` gives
    its Result (or raises its error)."""

    __slots__ = ("_future",)

    def __init__(self, core_job: Any, client: "AsyncClient",
                 future: "asyncio.Future[None]", source: Any = None) -> None:
        super().__init__(core_job, client, source)
        self._future = future

    async def wait(self, timeout: Optional[float] = None) -> Result:
        """The Result once the job ends.  With ``timeout`` (seconds) raise
        WaitTimeout when time is up; the job keeps running and can be
        awaited again.  Cancelling the awaiting task does not cancel the
        job either."""
        if not self._job.done:
            if timeout is None:
                await asyncio.shield(self._future)
            else:
                try:
                    await asyncio.wait_for(asyncio.shield(self._future), timeout)
                except asyncio.TimeoutError:
                    exc: Any = _core.error_for(
                        _core.ERR_WAIT_TIMEOUT, "no result after %.3g s; the job is "
                        "still running and can be awaited again" % timeout,
                        task_id=self.task_id)
                    exc.job = self
                    raise exc from None
        return self.result()

    def __await__(self):
        return self.wait().__await__()


class AsyncClient(_ClientBase):
    """The asyncio client: the same arguments and methods as ``Client``,
    as coroutines.  Use ``async with AsyncClient() as client`` or ``await
    client.close()``.  It binds to the event loop it is first used in; it
    can move to another loop only while no job runs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._timer: Optional[asyncio.TimerHandle] = None
        self._watched: dict[int, int] = {}  # fd -> POLL_IN|POLL_OUT watched

    # -- event loop glue ---------------------------------------------------

    def _bind(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return loop
        if self.closed:
            raise _core.error_for(_core.ERR_INVALID_ARGUMENT, "the client is closed")
        if self._loop is not None:
            if self._core.active:
                raise _core.error_for(_core.ERR_BUSY, "the AsyncClient has jobs running "
                                      "on another event loop")
            self._core.set_event_hooks(None, None)
            self._unwatch_all()
        self._loop = loop
        self._core.set_event_hooks(self._on_socket, self._on_timer)
        return loop

    def _on_socket(self, fd: int, what: int) -> None:
        loop = self._loop
        if loop is None:
            return
        want = 0 if what & _core.POLL_REMOVE else what & (_core.POLL_IN | _core.POLL_OUT)
        had = self._watched.get(fd, 0)
        if want & _core.POLL_IN and not had & _core.POLL_IN:
            loop.add_reader(fd, self._ready, fd, _core.POLL_IN)
        elif had & _core.POLL_IN and not want & _core.POLL_IN:
            loop.remove_reader(fd)
        if want & _core.POLL_OUT and not had & _core.POLL_OUT:
            loop.add_writer(fd, self._ready, fd, _core.POLL_OUT)
        elif had & _core.POLL_OUT and not want & _core.POLL_OUT:
            loop.remove_writer(fd)
        if want:
            self._watched[fd] = want
        else:
            self._watched.pop(fd, None)

    def _on_timer(self, timeout_ms: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if timeout_ms >= 0 and self._loop is not None:
            self._timer = self._loop.call_later(timeout_ms / 1000.0, self._fire_timer)

    def _fire_timer(self) -> None:
        self._timer = None
        if not self.closed:
            self._core.socket_action(_core.SOCKET_TIMEOUT, 0)

    def _ready(self, fd: int, what: int) -> None:
        if not self.closed:
            self._core.socket_action(fd, what)

    def _unwatch_all(self) -> None:
        loop, watched, self._watched = self._loop, self._watched, {}
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if loop is None or loop.is_closed():
            return
        for fd, mask in watched.items():
            if mask & _core.POLL_IN:
                loop.remove_reader(fd)
            if mask & _core.POLL_OUT:
                loop.remove_writer(fd)

    # -- analyses ----------------------------------------------------------

    async def submit(self, image: Any = None, actions: _actions.Actions = None, *,
                     format: str = "json", version: Any = None,
                     file_id: Optional[str] = None, file_name: Optional[str] = None,
                     hd: bool = False, pf_camera_kit: Optional[bool] = None,
                     mask_overlay: Optional[bool] = None,
                     miniserver_args: Union[Mapping[str, Any], str, None] = None,
                     deadline: Optional[float] = None,
                     delete_after: bool = False) -> AsyncJob:
        """Validate and start one analysis (as ``Client.submit``; with
        ``delete_after`` awaiting the job deletes its task once the result
        is in hand)."""
        loop = self._bind()
        kw = request_kwargs(image, actions, format=format, version=version,
                            file_id=file_id, file_name=file_name, hd=hd,
                            pf_camera_kit=pf_camera_kit, mask_overlay=mask_overlay,
                            miniserver_args=miniserver_args, deadline=deadline)
        future: asyncio.Future[None] = loop.create_future()
        core_job = self._core.submit(callback=_resolver(future),
                                     delete_after=bool(delete_after), **kw)
        return AsyncJob(core_job, self, future, _kept_source(kw))

    async def analyze(self, image: Any = None, actions: _actions.Actions = None, *,
                      timeout: Optional[float] = None, **kwargs: Any) -> Result:
        """Analyse one image; arguments as ``Client.analyze``."""
        job = await self.submit(image, actions, **kwargs)
        return await job.wait(timeout)

    async def resume_job(self, task_id: str, *, version: Any = None,
                         deadline: Optional[float] = None) -> AsyncJob:
        """A job for a task that already exists (as ``Client.resume_job``):
        polled to its end on the event loop; nothing is created anew."""
        loop = self._bind()
        if not isinstance(task_id, str):
            raise TypeError("task_id must be a str, not %s" % type(task_id).__name__)
        future: asyncio.Future[None] = loop.create_future()
        core_job = self._core.resume(task_id, api_version=_config.api_version(version),
                                     deadline_ms=_config.ms(deadline) or 0,
                                     callback=_resolver(future))
        return AsyncJob(core_job, self, future)

    async def resume(self, task_id: str, *, version: Any = None,
                     deadline: Optional[float] = None,
                     timeout: Optional[float] = None) -> Result:
        """Resume a task from its id and return its Result (as
        ``Client.resume``)."""
        job = await self.resume_job(task_id, version=version, deadline=deadline)
        return await job.wait(timeout)

    async def fetch_masks(self, result_or_job: Any,
                          folder: Optional[Union[str, os.PathLike]] = None, *,
                          timeout: Optional[float] = None,
                          delete_after: bool = False) -> Result:
        """Download the masks and the resized image of a finished analysis
        (as ``Client.fetch_masks``) on the event loop: the fetch job's own
        callback resolves a future when it ends (no polling)."""
        loop = self._bind()
        future: asyncio.Future[None] = loop.create_future()
        fetch, core_job, image = self._start_fetch(result_or_job, folder,
                                                   _resolver(future), delete_after)
        await _end_or_cancel(fetch, future, timeout, "masks not downloaded",
                             task_id=fetch.task_id)
        return self._fetched(fetch, core_job, image)

    # -- account -----------------------------------------------------------

    async def _account(self, op: str, *args: Any, timeout: Optional[float] = None) -> Any:
        loop = self._bind()
        future: asyncio.Future[None] = loop.create_future()
        job = self._account_job(op, *args, callback=_resolver(future), timeout=timeout)
        await _end_or_cancel(job, future, timeout, "no answer")
        return self._account_outcome(job, op)

    async def credit(self, *, timeout: Optional[float] = None) -> Any:
        """The key's balance (as ``Client.credit``)."""
        return await self._account("credit", timeout=timeout)

    async def price_list(self, *, timeout: Optional[float] = None) -> list:
        """Every SKU of the price list (as ``Client.price_list``)."""
        return await self._account("price_list", timeout=timeout)

    async def delete(self, task_id: str, *, timeout: Optional[float] = None) -> None:
        """Delete a finished task (as ``Client.delete``)."""
        if not isinstance(task_id, str):
            raise TypeError("task_id must be a str, not %s" % type(task_id).__name__)
        await self._account("delete", task_id, timeout=timeout)

    async def _delete_result(self, result: Result) -> Result:
        try:
            await self.delete(result.task_id)
        except Error as exc:
            logger.warning("delete_after: task %s was not deleted: %s", result.task_id, exc)
            return mark_deleted(result, exc)
        return mark_deleted(result, None)

    async def analyze_many(self, images: Iterable[Any], actions: _actions.Actions = None,
                           *, concurrency: int = 16, progress: Any = True,
                           on_result: Optional[Callable[[int, Any, Any], Any]] = None,
                           raise_on_error: bool = False, **kwargs: Any) -> list:
        """Analyse many images with at most ``concurrency`` at a time.
        Results are in input order, each a Result or the exception; with
        ``raise_on_error`` the first failure stops new submissions and is
        raised once the running ones ended.  If the caller is cancelled,
        the running jobs go on being polled until ``close()``."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        items = list(images)
        results: list = [None] * len(items)
        indexes = iter(range(len(items)))
        failure: list[BaseException] = []
        bar = Progress(progress, len(items))

        async def worker() -> None:
            for i in indexes:
                if failure and raise_on_error:
                    return
                try:
                    if isinstance(items[i], ResumeTask):
                        outcome: Any = await self.resume(items[i].task_id,
                                                         **resume_kwargs(kwargs))
                    else:
                        outcome = await self.analyze(items[i], actions, **kwargs)
                except Error as exc:
                    outcome = exc
                    if raise_on_error and not failure:
                        failure.append(exc)
                results[i] = outcome
                bar.advance(not isinstance(outcome, Error))
                if on_result is not None:
                    on_result(i, items[i], outcome)

        try:
            await asyncio.gather(*(worker() for _ in range(min(concurrency,
                                                               len(items)))))
        finally:
            bar.close()
        if failure:
            raise failure[0]
        return results

    # -- lifetime ----------------------------------------------------------

    async def close(self, timeout: Optional[float] = None) -> None:
        """Let running tasks end (at most ``timeout`` seconds, default
        ``close_timeout``), then free the client; the ids of tasks still
        running are logged as warnings.  Idempotent."""
        if self.closed:
            return
        limit = self._close_timeout if timeout is None else timeout
        loop = self._loop
        drive = loop is not None and not loop.is_closed() and self._core.active > 0
        if drive and loop is not asyncio.get_running_loop():
            raise _core.error_for(_core.ERR_BUSY, "close() must run on the client's "
                                  "event loop while its jobs run")
        try:
            if drive and loop is not None:
                end = loop.time() + limit
                while self._core.active and loop.time() < end:
                    await asyncio.sleep(_DRAIN_POLL)
            # a closed loop cannot drive the jobs any more: they are abandoned
            if self._core.active:
                logger.warning("close: %d job(s) still running are abandoned; their "
                               "tasks may still be billed", self._core.active)
        finally:
            self._core.close()
            self._unwatch_all()
            self._loop = None

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()


__all__ = ["AsyncClient", "AsyncJob"]
