"""The blocking client: ``Client`` and ``Job``."""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Mapping, Optional, Union

from . import _config
from . import actions as _actions
from ._config import logger
from ._native import _core
from ._source import source_kwargs
from .account import Credit, Sku, mark_deleted, price_list_from_core
from .errors import Error, WaitTimeout
from .results import Result, _Origin

#: How long ``close()`` lets running tasks finish before abandoning them.
DEFAULT_CLOSE_TIMEOUT = 120.0

_STATE_NAMES: dict[int, str] = {}  # filled below: core state number -> "polling", "done", ...


def _tri(value: Optional[bool]) -> int:
    return -1 if value is None else int(bool(value))


def request_kwargs(image: Any, actions: _actions.Actions, *, format: str = "json",
                   version: Any = None, file_id: Optional[str] = None,
                   file_name: Optional[str] = None, hd: bool = False,
                   pf_camera_kit: Optional[bool] = None,
                   mask_overlay: Optional[bool] = None,
                   miniserver_args: Union[Mapping[str, Any], str, None] = None,
                   deadline: Optional[float] = None) -> dict:
    """Keyword arguments of ``_core.Client.submit`` for one analysis."""
    kw = source_kwargs(image, file_id, file_name)
    if isinstance(miniserver_args, Mapping):
        # encoded by the core, as Lua's tables are (sa_miniserver_args_json)
        miniserver_args = _core.miniserver_args_json(miniserver_args)
    kw.update(actions=_actions.normalize(actions, hd),
              format=_config.format_code(format),
              api_version=_config.api_version(version),
              pf_camera_kit=_tri(pf_camera_kit), mask_overlay=_tri(mask_overlay),
              miniserver_args=miniserver_args,
              deadline_ms=_config.ms(deadline, positive=True, what="deadline") or 0)
    return kw


def state_name(state: int) -> str:
    return _STATE_NAMES.get(state, "unknown")


class _JobBase:
    """What Job and AsyncJob share: the core job's figures, its Result, and
    cancel/abandon.  Only the waiting differs."""

    __slots__ = ("_job", "_client", "_result", "_source", "__weakref__")

    def __init__(self, core_job: Any, client: Any, source: Any = None) -> None:
        self._job = core_job
        self._client = client
        self._result: Optional[Result] = None
        self._source = source

    @property
    def task_id(self) -> Optional[str]:
        """The task's id once it was created (None before)."""
        return self._job.task_id

    @property
    def status(self) -> str:
        """The job's state: "validate", "queued", "file_create", "upload",
        "task_create", "poll_wait", "polling", "backoff", then "done",
        "failed" or "cancelled"."""
        return state_name(self._job.state)

    @property
    def units(self) -> int:
        """Units the request costs when it succeeds."""
        return self._job.units

    @property
    def polls(self) -> int:
        """Status polls sent so far."""
        return self._job.polls

    def done(self) -> bool:
        """True once the job ended (done, failed or cancelled)."""
        return self._job.done

    def result(self) -> Result:
        """The Result of an ended job, or its error raised.  UsageError
        while the job runs."""
        if self._result is None:
            self._result = Result._from_core(
                self._job.result(), _Origin(self._client, self._job, self._source))
        return self._result

    def cancel(self) -> None:
        """Stop waiting for the job.  A task already created keeps being
        polled in the background to its end (it may still be billed)."""
        self._job.cancel()

    def abandon(self) -> None:
        """Cancel and stop polling the task: it may expire and still be
        billed.  Only when the client is going away anyway."""
        self._job.abandon()

    def __repr__(self) -> str:
        return "%s(task_id=%r, status=%r)" % (type(self).__name__, self.task_id,
                                              self.status)


class Job(_JobBase):
    """One analysis started by ``Client.submit``.

    The job advances whenever its client runs (``wait()`` on any job of the
    client, ``Client.run()``, ``analyze``).  A job whose task exists keeps
    being polled to its end even when nobody waits for it, as long as the
    client is open.
    """

    __slots__ = ()

    @property
    def file_id(self) -> Optional[str]:
        return self._job.file_id

    @property
    def request_id(self) -> Optional[str]:
        """x-request-id of the answer to the job's last request (for
        support); None when that request got no answer or it had none."""
        return self._job.request_id

    def wait(self, timeout: Optional[float] = None) -> Result:
        """Wait until the job ends and return its Result, or raise its
        error.  With ``timeout`` (seconds) raise WaitTimeout when time is
        up; the job keeps running (``exc.job`` is this job) and can be
        waited on again.  Ctrl-C raises KeyboardInterrupt the same way."""
        try:
            self._job.wait(-1 if timeout is None else _config.ms(timeout))
        except WaitTimeout as exc:
            exc.job = self
            raise
        return self.result()

    def exception(self) -> Optional[BaseException]:
        """The error of an ended, failed job (not raised); None when it
        succeeded.  UsageError while it runs."""
        try:
            self.result()
        except Error as exc:
            if not self.done():
                raise
            return exc
        return None


class _ClientBase:
    """Construction and information shared by Client and AsyncClient."""

    def __init__(self, api_key: Optional[str] = None, *, base_url: Optional[str] = None,
                 version: Union[str, int] = "2.1", upload_path: str = "skin-analysis",
                 timeout: Optional[float] = None, connect_timeout: Optional[float] = None,
                 upload_timeout: Optional[float] = None,
                 poll_interval: Optional[float] = None,
                 max_poll_interval: Optional[float] = None,
                 deadline: Optional[float] = None, max_polls: Optional[int] = None,
                 max_retries: Optional[int] = None, rate_limit: bool = True,
                 max_connections: Optional[int] = None, max_jobs: Optional[int] = None,
                 allow_insecure_http: bool = False, ca_bundle: Optional[str] = None,
                 proxy: Optional[str] = None, user_agent: Optional[str] = None,
                 close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
                 poll_strategy: str = "learned", webhooks: bool = False,
                 **core_options: Any) -> None:
        self._core: Any = None
        key = _config.resolve_key(api_key)
        self._base_url = _config.resolve_base_url(base_url)
        self._version = _config.version_text(_config.api_version(version))
        _config.ms(close_timeout, what="close_timeout")  # refused now, not at close
        self._close_timeout = close_timeout
        opts = _config.core_options(
            base_url=self._base_url, version=version, upload_path_=upload_path,
            timeout=timeout, connect_timeout=connect_timeout,
            upload_timeout=upload_timeout, poll_interval=poll_interval,
            max_poll_interval=max_poll_interval, deadline=deadline,
            max_polls=max_polls, max_retries=max_retries, rate_limit=rate_limit,
            max_connections=max_connections, max_jobs=max_jobs,
            allow_insecure_http=allow_insecure_http, ca_bundle=ca_bundle, proxy=proxy,
            user_agent=user_agent, extra=core_options,
            poll_strategy_=poll_strategy, webhooks=webhooks)
        if key is None:
            raise _core.error_for(_core.ERR_AUTH, "no API key: pass api_key= or set "
                                  + _config.ENV_KEY)
        self._core = _core.Client(key, **opts)

    @property
    def base_url(self) -> str:
        return self._base_url or _config.DEFAULT_BASE_URL

    @property
    def version(self) -> str:
        return self._version

    @property
    def closed(self) -> bool:
        return self._core is None or self._core.closed

    @property
    def active(self) -> int:
        """Jobs the client is driving, background polls included."""
        return 0 if self.closed else self._core.active

    def notify(self, task_id: str) -> int:
        """A webhook said task ``task_id`` ended: poll it now instead of at
        its next scheduled poll.  Returns the number of jobs notified (0
        when no running job of this client has that task)."""
        if self.closed:
            raise _core.error_for(_core.ERR_INVALID_ARGUMENT, "the client is closed")
        return self._core.notify(task_id)

    def _done_core_job(self, source: Any) -> tuple[Any, Any]:
        """(core job, submitted image) of a Result, Job or AsyncJob of this
        client, for fetch_masks."""
        origin = getattr(source, "_origin", None) if isinstance(source, Result) else None
        if isinstance(source, Result):
            if origin is None:
                raise _core.error_for(_core.ERR_INVALID_ARGUMENT, "this result was not "
                                      "produced by a job: nothing to fetch masks for")
            return origin.job, origin.source
        core_job = getattr(source, "_job", None)
        if core_job is None or not hasattr(core_job, "task_id"):
            raise TypeError("fetch_masks() takes a Result or a Job, not %s"
                            % type(source).__name__)
        return core_job, getattr(source, "_source", None)

    def _start_fetch(self, source: Any, folder: Optional[Union[str, os.PathLike]],
                     callback: Optional[Callable[[Any, int], Any]] = None,
                     delete_after: bool = False) -> tuple[Any, Any, Any]:
        if self.closed:
            raise _core.error_for(_core.ERR_INVALID_ARGUMENT, "cannot download the masks: "
                                  "the client is closed")
        core_job, image = self._done_core_job(source)
        path = None
        if folder is not None:
            os.makedirs(folder, exist_ok=True)
            path = os.fspath(folder)
        return (self._core.fetch_masks(core_job, path, callback,
                                       delete_after=bool(delete_after)), core_job, image)

    def _fetched(self, fetch: Any, core_job: Any, image: Any) -> Result:
        """The Result of an ended fetch job, or its error raised with
        ``exc.result``: a Result of the files that did arrive."""
        try:
            data = fetch.result()
        except Error as exc:
            partial = getattr(exc, "result", None)
            if isinstance(partial, dict):
                exc.result = Result._from_core(partial, _Origin(self, core_job, image))
            raise
        return Result._from_core(data, _Origin(self, core_job, image))

    def __repr__(self) -> str:
        return "%s(base_url=%r, version=%r, api_key='***'%s)" % (
            type(self).__name__, self.base_url, self.version,
            ", closed" if self.closed else "")

    def _account_job(self, op: str, *args: Any, callback: Any = None,
                     timeout: Optional[float] = None) -> Any:
        if self.closed:
            raise _core.error_for(_core.ERR_INVALID_ARGUMENT, "the client is closed")
        return getattr(self._core, op)(*args, deadline_ms=_config.ms(timeout) or 0,
                                       callback=callback)

    @staticmethod
    def _account_outcome(job: Any, op: str) -> Any:
        """The balance, the price list, or None for a delete; the job's
        error raised when it failed."""
        if op == "delete":
            if job.status != 0:
                job.result()  # raises the job's error
            return None
        data = job.result()
        return Credit._from_core(data) if op == "credit" else price_list_from_core(data)

    @staticmethod
    def cost(actions: _actions.Actions = None) -> int:
        """Units a successful analysis with these actions costs."""
        return _actions.cost(actions)


class Client(_ClientBase):
    """A blocking client of the Skin Analysis API.

    ``api_key`` defaults to $YOUCAM_API_KEY and ``base_url`` to
    $SKINANALYSIS_BASE_URL, else the API's host; ``version`` is "2.1" or
    "2.0".  Times are in seconds (``timeout`` per API request, ``deadline``
    per analysis).  Use it as a context manager, or call ``close()``:
    closing lets running tasks finish (at most ``close_timeout`` seconds) so
    that nothing billed is left unpolled.  Extra keyword arguments go to
    the core by their sa_client_options names (``rate_per_second``,
    ``backoff_initial_ms``, ``jitter_seed``, ...).  ``rate_limit_scope``
    ("host", the default, or "process"; else $SKINANALYSIS_RATE_LIMIT_SCOPE)
    says who shares the key's rate budget: every process on this machine
    with the same key and base URL, or this client only.

    A client and its jobs are used by one thread at a time; blocking calls
    release the GIL, and Ctrl-C interrupts them at once (the jobs go on).
    """

    # -- analyses ----------------------------------------------------------

    def submit(self, image: Any = None, actions: _actions.Actions = None, *,
               format: str = "json", version: Any = None, file_id: Optional[str] = None,
               file_name: Optional[str] = None, hd: bool = False,
               pf_camera_kit: Optional[bool] = None, mask_overlay: Optional[bool] = None,
               miniserver_args: Union[Mapping[str, Any], str, None] = None,
               deadline: Optional[float] = None,
               callback: Optional[Callable[[Any, int], Any]] = None,
               delete_after: bool = False) -> Job:
        """Validate the request and start the analysis; returns at once.

        ``image`` is a path, an http(s) URL, bytes or a binary file object
        (or pass ``file_id=`` of an uploaded file).  ``actions`` defaults to
        every SD concern (every HD concern with ``hd=True``).  Validation
        errors (ValidationError) are raised here, before anything is sent.
        With ``delete_after=True`` the core deletes the task (its image
        and outputs) from the vendor once its result is in hand, before the
        job ends: a zip result holds its masks; a json result's mask URLs
        are gone then (ask ``fetch_masks(..., delete_after=True)`` instead
        for them).  ``Result.deleted`` / ``Result.delete_error`` say how the
        delete went; a failed delete never fails the analysis.
        """
        kw = request_kwargs(image, actions, format=format, version=version,
                            file_id=file_id, file_name=file_name, hd=hd,
                            pf_camera_kit=pf_camera_kit, mask_overlay=mask_overlay,
                            miniserver_args=miniserver_args, deadline=deadline)
        return Job(self._core.submit(callback=callback, delete_after=bool(delete_after),
                                     **kw), self, _kept_source(kw))

    def analyze(self, image: Any = None, actions: _actions.Actions = None, *,
                format: str = "json", version: Any = None, file_id: Optional[str] = None,
                file_name: Optional[str] = None, hd: bool = False,
                pf_camera_kit: Optional[bool] = None, mask_overlay: Optional[bool] = None,
                miniserver_args: Union[Mapping[str, Any], str, None] = None,
                deadline: Optional[float] = None,
                timeout: Optional[float] = None, delete_after: bool = False) -> Result:
        """Analyse one image and return its Result (blocking).  Arguments
        as ``submit``; ``timeout`` bounds the wait (WaitTimeout, the job
        keeps running: ``exc.job.wait()`` resumes it)."""
        job = self.submit(image, actions, format=format, version=version,
                          file_id=file_id, file_name=file_name, hd=hd,
                          pf_camera_kit=pf_camera_kit, mask_overlay=mask_overlay,
                          miniserver_args=miniserver_args, deadline=deadline,
                          delete_after=delete_after)
        return job.wait(timeout)

    def resume_job(self, task_id: str, *, version: Any = None,
                   deadline: Optional[float] = None,
                   callback: Optional[Callable[[Any, int], Any]] = None) -> Job:
        """A Job for a task that already exists (its id from an earlier Job,
        an error's ``task_id``, a batch record, another process): it polls
        the task to its end and gives its Result like a submitted job.
        Nothing is created or billed anew: no upload, no task create.
        ``task_id`` is checked before anything is sent (ValidationError);
        an id the API does not know ends with TaskExpiredError.  ``version``
        picks the status path ("2.0"/"2.1", default the client's)."""
        if not isinstance(task_id, str):
            raise TypeError("task_id must be a str, not %s" % type(task_id).__name__)
        return Job(self._core.resume(task_id, api_version=_config.api_version(version),
                                     deadline_ms=_config.ms(deadline) or 0,
                                     callback=callback), self)

    def resume(self, task_id: str, *, version: Any = None,
               deadline: Optional[float] = None,
               timeout: Optional[float] = None) -> Result:
        """Resume a task from its id and return its Result (blocking), as
        ``analyze`` does for a new image: so nothing billed is lost to a
        crash, a restart or a job that gave up waiting.  See
        ``resume_job``; ``timeout`` bounds the wait (WaitTimeout, the job
        keeps running: ``exc.job.wait()`` resumes it)."""
        return self.resume_job(task_id, version=version, deadline=deadline).wait(timeout)

    def analyze_many(self, images: Iterable[Any], actions: _actions.Actions = None, *,
                     concurrency: int = 16, progress: Any = True,
                     on_result: Optional[Callable[[int, Any, Any], Any]] = None,
                     raise_on_error: bool = False, **kwargs: Any) -> list:
        """Analyse many images on this client; see ``skinanalysis.analyze_many``."""
        from .batch import run_batch
        return run_batch(self, list(images), actions, concurrency=concurrency,
                         progress=progress, on_result=on_result,
                         raise_on_error=raise_on_error, request=kwargs)

    def fetch_masks(self, result_or_job: Any, folder: Optional[Union[str, os.PathLike]] = None,
                    *, timeout: Optional[float] = None, delete_after: bool = False) -> Result:
        """Download the masks and the resized image of a finished analysis
        (a Result or a Job of this client) through the core, concurrently,
        never with the API key; expired URLs are refreshed by polling the
        task again and retried once (UrlExpiredError after that).  With a
        ``folder`` (created when missing) the files are streamed to disk,
        never held in memory: ``Result.paths`` lists them.  Without one
        they come back in ``Result.files``, at most the client's
        ``max_files_bytes`` (256 MiB) for all of them (LimitError past
        it).  Names are cleaned and unique.  ``timeout`` (seconds) bounds
        the wait: WaitTimeout, and the downloads stop.  Each file is
        fetched on its own: when some fail, the first failure is raised
        once all ended, with ``exc.result`` holding the files that did
        arrive.  For zip results the masks are already there.
        ``delete_after=True`` deletes the task from the vendor once every
        file is in (``Result.deleted`` / ``delete_error`` of the result)."""
        fetch, core_job, image = self._start_fetch(result_or_job, folder,
                                                   delete_after=delete_after)
        try:
            fetch.wait(-1 if timeout is None else _config.ms(timeout))
        except WaitTimeout:
            fetch.cancel()
            raise
        return self._fetched(fetch, core_job, image)

    # -- account -----------------------------------------------------------

    def _account(self, op: str, *args: Any, timeout: Optional[float] = None) -> Any:
        job = self._account_job(op, *args, timeout=timeout)
        try:
            job.wait(-1 if timeout is None else _config.ms(timeout))
        except WaitTimeout:
            job.cancel()
            raise
        return self._account_outcome(job, op)

    def credit(self, *, timeout: Optional[float] = None) -> Credit:
        """The key's balance (GET /s2s/v1.0/client/credit): ``.available``
        units the API can spend (the "Api*" grants), ``.by_type``, and the
        grants with their raw entries.  Through the rate limiter like every
        API request; AuthError for a bad key."""
        return self._account("credit", timeout=timeout)

    def price_list(self, *, timeout: Optional[float] = None) -> list[Sku]:
        """Every SKU of the price list (all pages followed)."""
        return self._account("price_list", timeout=timeout)

    def delete(self, task_id: str, *, timeout: Optional[float] = None) -> None:
        """Delete a finished task with its input image and outputs: its
        status and mask URLs are gone afterwards.  BadRequestError
        (``.code`` "OperationInvalid") while the task runs,
        TaskExpiredError for an unknown, expired or deleted id,
        ValidationError for a string that is no task id."""
        if not isinstance(task_id, str):
            raise TypeError("task_id must be a str, not %s" % type(task_id).__name__)
        self._account("delete", task_id, timeout=timeout)

    def _delete_result(self, result: Result) -> Result:
        """delete_after: delete the result's task now; a failure is kept on
        the result (``delete_error``), never raised."""
        try:
            self.delete(result.task_id)
        except Error as exc:
            logger.warning("delete_after: task %s was not deleted: %s", result.task_id, exc)
            return mark_deleted(result, exc)
        return mark_deleted(result, None)

    def run(self, timeout: Optional[float] = None) -> None:
        """Drive the client until every job (and background poll) ended.
        WaitTimeout when ``timeout`` seconds pass first."""
        self._core.run(-1 if timeout is None else _config.ms(timeout))

    def step(self, timeout: float = 0.0) -> int:
        """Do what is ready, waiting at most ``timeout`` seconds; returns
        the number of running jobs (for frame loops and custom drivers)."""
        return self._core.step(_config.ms(timeout))

    def wakeup(self) -> None:
        """Make a blocking wait of this client (in another thread) return
        with WaitInterrupted.  The only method safe from any thread."""
        self._core.wakeup()

    # -- lifetime ----------------------------------------------------------

    def close(self, timeout: Optional[float] = None) -> None:
        """Let running tasks end (at most ``timeout`` seconds, default
        ``close_timeout``), then free the client.  Tasks still running then
        are abandoned: their ids are logged as warnings (they may still be
        billed).  Idempotent."""
        core = self._core
        if core is None or core.closed:
            return
        limit = self._close_timeout if timeout is None else timeout
        try:
            if core.active:
                logger.debug("close: waiting up to %.1f s for %d running job(s)",
                             limit, core.active)
                core.run(_config.ms(limit))
        except WaitTimeout:
            logger.warning("close: %d job(s) still running after %.1f s are abandoned; "
                           "their tasks may still be billed", core.active, limit)
        finally:
            core.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def _kept_source(kw: dict) -> Any:
    """The submitted image a Result keeps for composites: the path or the
    bytes (None for URLs and file ids)."""
    return kw.get("file_path") if kw.get("file_path") is not None else kw.get("buffer")


def _init_state_names() -> None:
    # the core's names (sa_job_state_name), the same strings Lua shows
    for state in range(_core.JOB_VALIDATE, _core.JOB_CANCELLED + 1):
        _STATE_NAMES[state] = _core.job_state_name(state)


_init_state_names()

__all__ = ["Client", "Job", "DEFAULT_CLOSE_TIMEOUT"]
