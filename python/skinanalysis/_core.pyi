# Type declarations of the extension skinanalysis._core (bindings/python/*.c).
from typing import Any, Callable, Optional, Sequence, Union
import os

_Path = Union[str, bytes, os.PathLike[str], os.PathLike[bytes]]
_Buffer = Union[bytes, bytearray, memoryview]

VERSION: str
VERSION_NUM: int

OK: int
ERR_NOMEM: int
ERR_INVALID_ARGUMENT: int
ERR_BUSY: int
ERR_NOT_DONE: int
ERR_INIT: int
ERR_UNKNOWN_ACTION: int
ERR_MIXED_TIERS: int
ERR_ACTION_COUNT: int
ERR_SOURCE: int
ERR_FILE: int
ERR_IMAGE_FORMAT: int
ERR_IMAGE_TOO_LARGE: int
ERR_IMAGE_TOO_SMALL: int
ERR_BAD_OPTION: int
ERR_INSECURE: int
ERR_AUTH: int
ERR_CREDITS: int
ERR_BAD_REQUEST: int
ERR_RATE_LIMITED: int
ERR_SERVER: int
ERR_PROTOCOL: int
ERR_UPLOAD: int
ERR_ENGINE: int
ERR_TASK_EXPIRED: int
ERR_TASK_TIMEOUT: int
ERR_AMBIGUOUS: int
ERR_TRANSPORT: int
ERR_TIMEOUT: int
ERR_DEADLINE: int
ERR_LIMIT: int
ERR_WAIT_TIMEOUT: int
ERR_INTERRUPTED: int
ERR_CANCELLED: int
ERR_CALLBACK: int
ERR_ZIP: int
ERR_URL_EXPIRED: int
ERR_DOWNLOAD: int
ERR_IMAGE_DECODE: int
ERR_WEBHOOK_SIGNATURE: int
ERR_WEBHOOK_STALE: int

TIER_SD: int
TIER_HD: int
MAX_ACTIONS: int
MAX_FILE_SIZE: int
MIN_SIDE_SD: int
MIN_SIDE_HD: int
IMAGE_UNKNOWN: int
IMAGE_JPEG: int
IMAGE_PNG: int
API_DEFAULT: int
API_V2_0: int
API_V2_1: int
UPLOAD_SKIN_ANALYSIS: int
UPLOAD_GENERIC: int
POLL_LEARNED: int
POLL_FIXED: int
LOG_DEBUG: int
LOG_INFO: int
LOG_WARNING: int
LOG_ERROR: int
FORMAT_JSON: int
FORMAT_ZIP: int
JOB_VALIDATE: int
JOB_QUEUED: int
JOB_FILE_CREATE: int
JOB_UPLOAD: int
JOB_TASK_CREATE: int
JOB_POLL_WAIT: int
JOB_POLLING: int
JOB_BACKOFF: int
JOB_FETCHING: int
JOB_DONE: int
JOB_FAILED: int
JOB_CANCELLED: int
POLL_NONE: int
POLL_IN: int
POLL_OUT: int
POLL_REMOVE: int
SOCKET_TIMEOUT: int
PARSE_STATUS_BODY: int
PARSE_SCORE_INFO: int

class Error(Exception):
    status: Optional[int]
    code: Optional[str]
    message: Optional[str]
    task_id: Optional[str]
    status_name: Optional[str]
    sa_status: Optional[int]
    retryable: bool

class UsageError(Error): ...
class ValidationError(Error, ValueError): ...
class ApiError(Error): ...
class AuthError(ApiError): ...
class CreditError(ApiError): ...
class BadRequestError(ApiError): ...
class RateLimitError(ApiError): ...
class ServerError(ApiError): ...
class UploadError(ApiError): ...
class TaskExpiredError(ApiError): ...
class TaskTimeoutError(ApiError): ...
class AmbiguousTaskError(ApiError): ...
class EngineError(Error): ...
class ProtocolError(Error): ...
class LimitError(ProtocolError): ...
class TransportError(Error): ...
class RequestTimeoutError(TransportError, TimeoutError): ...
class DeadlineError(Error, TimeoutError): ...
class WaitTimeout(Error, TimeoutError):
    job: Any  # set by the package: the Job (or AsyncJob) still running
class WaitInterrupted(Error): ...
class CancelledError(Error): ...
class ZipError(ProtocolError): ...
class DownloadError(Error): ...
class UrlExpiredError(DownloadError): ...
class ImageDecodeError(Error, ValueError): ...
class WebhookError(Error): ...

exceptions: dict[str, type[Error]]

def version() -> str: ...
def strerror(status: int) -> str: ...
def status_name(status: int) -> str: ...
def error_for(status: int, message: Optional[str] = ..., *, http_status: int = ...,
              code: Optional[str] = ..., task_id: Optional[str] = ...) -> Error: ...
def actions() -> tuple[str, ...]: ...
def action_tier(name: str) -> int: ...
def cost(actions: Sequence[str]) -> int: ...
def probe_image(source: Union[_Path, _Buffer]) -> tuple[int, int, int]: ...
def parse_result(text: Union[str, _Buffer], kind: int = ...) -> dict[str, Any]: ...
# The result dicts carry "files": ((name, bytes or None, IMAGE_* format,
# path or None), ...): bytes held in memory, or the path of a file written
# into a folder.
def parse_zip(data: _Buffer, max_entry_bytes: int = ...) -> dict[str, Any]: ...
def composite_write(source: _Buffer, masks: Sequence[_Buffer], out_path: _Path,
                    concerns: Optional[Sequence[str]] = ..., max_side: int = ...) -> None: ...
def concern_color(concern: str) -> tuple[int, int, int]: ...
def palette_color(i: int) -> tuple[int, int, int]: ...
def compare(before: tuple[Sequence[tuple[str, str, Optional[float], Optional[float], Optional[str]]],
                          Optional[float], Optional[float]],
            after: tuple[Sequence[tuple[str, str, Optional[float], Optional[float], Optional[str]]],
                         Optional[float], Optional[float]]) -> tuple[list[tuple[Any, ...]], tuple[Any, ...], tuple[Any, ...]]: ...
def clean_file_name(name: str) -> str: ...
def save_files(folder: _Path, names: Sequence[str], datas: Sequence[_Buffer]) -> list[str]: ...
def webhook_verify(secret: str, msg_id: str, timestamp: str, signature: str,
                   body: _Buffer, *, tolerance_s: int = ..., now_s: int = ...) -> None: ...
def webhook_parse(body: _Buffer) -> tuple[str, Optional[str], Optional[int]]: ...

class Job:
    state: int
    state_name: str
    done: bool
    status: int
    client: Client
    task_id: Optional[str]
    file_id: Optional[str]
    request_id: Optional[str]
    errmsg: Optional[str]
    api_error_code: Optional[str]
    engine_error: Optional[str]
    http_status: int
    units: int
    polls: int
    def wait(self, timeout_ms: int = ...) -> None: ...
    def result(self) -> dict[str, Any]: ...
    def cancel(self) -> None: ...
    def abandon(self) -> None: ...

class Client:
    active: int
    closed: bool
    errmsg: str
    def __init__(self, api_key: Optional[str] = ..., *,
                 log: Optional[Callable[[int, str], Any]] = ..., **options: Any) -> None: ...
    def submit(self, *, file_path: Optional[_Path] = ..., buffer: Optional[_Buffer] = ...,
               image_url: Optional[str] = ..., file_id: Optional[str] = ...,
               file_name: Optional[str] = ..., actions: Optional[Sequence[str]] = ...,
               format: int = ..., api_version: int = ..., pf_camera_kit: int = ...,
               mask_overlay: int = ..., miniserver_args: Optional[str] = ...,
               deadline_ms: int = ...,
               callback: Optional[Callable[[Job, int], Any]] = ...,
               delete_after: bool = ...) -> Job: ...
    def resume(self, task_id: str, *, api_version: int = ..., deadline_ms: int = ...,
               callback: Optional[Callable[[Job, int], Any]] = ...) -> Job: ...
    def credit(self, *, deadline_ms: int = ...,
               callback: Optional[Callable[[Job, int], Any]] = ...) -> Job: ...
    def price_list(self, *, deadline_ms: int = ...,
                   callback: Optional[Callable[[Job, int], Any]] = ...) -> Job: ...
    def delete(self, task_id: str, *, deadline_ms: int = ...,
               callback: Optional[Callable[[Job, int], Any]] = ...) -> Job: ...
    def step(self, timeout_ms: int = ...) -> int: ...
    def run(self, timeout_ms: int = ...) -> None: ...
    def socket_action(self, fd: int, what: int) -> int: ...
    def set_event_hooks(self, socket_cb: Optional[Callable[[int, int], Any]],
                        timer_cb: Optional[Callable[[int], Any]]) -> None: ...
    def timeout_ms(self) -> int: ...
    def notify(self, task_id: str) -> int: ...
    def fetch_masks(self, done_job: Job, folder: Optional[_Path] = ...,
                    callback: Optional[Callable[[Job, int], Any]] = ..., *,
                    delete_after: bool = ...) -> Job: ...
    def wakeup(self) -> None: ...
    def close(self) -> None: ...
