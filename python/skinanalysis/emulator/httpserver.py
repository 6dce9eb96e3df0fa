"""A small HTTP/1.1 server on asyncio protocols.

Enough of HTTP/1.1 for API clients: keep-alive, pipelining, Content-Length
request bodies, ``Expect: 100-continue``; chunked request bodies are refused
with 411. Handlers are synchronous functions ``handler(Request) -> Response``
called on the event loop; a Response may ask for a delay, a streamed body or
a deliberately broken connection (used by fault injection).
"""

import asyncio
import email.utils
import time
from urllib.parse import parse_qsl, unquote

MAX_HEAD = 64 * 1024

REASONS = {
    100: "Continue", 200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 411: "Length Required",
    413: "Payload Too Large", 429: "Too Many Requests", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
}


class Request:
    __slots__ = ("method", "target", "path", "query", "version", "headers", "header_names",
                 "body", "client_ip", "keep_alive")

    def __init__(self, method, target, version, headers, header_names, body, client_ip):
        self.method = method
        self.target = target
        raw_path, _, qs = target.partition("?")
        self.path = unquote(raw_path)
        self.query = dict(parse_qsl(qs, keep_blank_values=True))
        self.version = version
        self.headers = headers            # lower-case name -> value
        self.header_names = header_names  # names as sent, in order
        self.body = body
        self.client_ip = client_ip
        conn = headers.get("connection", "").lower()
        if version == "HTTP/1.0":
            self.keep_alive = "keep-alive" in conn
        else:
            self.keep_alive = "close" not in conn


class Response:
    """``mode`` is 'normal', 'close_before' (drop the connection without an
    answer) or 'close_mid' (send the head and half the body, then close).
    ``stream`` is an optional (length, iterable of bytes chunks; a number in
    it is a pause of that many seconds) pair that
    replaces ``body``."""

    __slots__ = ("status", "headers", "body", "delay", "mode", "stream", "on_sent")

    def __init__(self, status, body=b"", headers=None, content_type=None):
        self.status = status
        self.headers = list(headers or ())
        if content_type:
            self.headers.append(("Content-Type", content_type))
        self.body = body
        self.delay = 0.0
        self.mode = "normal"
        self.stream = None
        self.on_sent = None  # callback(Response) once written (or dropped)


def _http_date(server):
    """The Date header from the server's clock (cached per second)."""
    now = int(server.time())
    if server.date_cache[0] != now:
        server.date_cache = (now, email.utils.formatdate(now, usegmt=True).encode())
    return server.date_cache[1]


class HTTPProtocol(asyncio.Protocol):
    def __init__(self, server):
        self.server = server
        self.transport = None
        self.buf = bytearray()
        self.busy = False
        self.closed = False
        self.sent_continue = False
        self.client_ip = "?"
        self._can_write = None

    # -- asyncio callbacks -------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.client_ip = peer[0] if peer else "?"
        self.server.connections.add(self)

    def connection_lost(self, exc):
        self.closed = True
        self.server.connections.discard(self)
        if self._can_write is not None and not self._can_write.done():
            self._can_write.set_result(None)

    def pause_writing(self):
        if self._can_write is None or self._can_write.done():
            self._can_write = asyncio.get_running_loop().create_future()

    def resume_writing(self):
        if self._can_write is not None and not self._can_write.done():
            self._can_write.set_result(None)

    def data_received(self, data):
        self.buf += data
        if not self.busy:
            self._process()

    # -- request parsing ---------------------------------------------------

    def _process(self):
        while not self.closed and not self.busy:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEAD:
                    self._fail(431, "request head too large")
                return
            head = bytes(self.buf[:end]).decode("latin-1")
            lines = head.split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                self._fail(400, "malformed request line")
                return
            method, target, version = parts
            headers = {}
            names = []
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if not sep or not name or name != name.strip():
                    self._fail(400, "malformed header line")
                    return
                key = name.lower()
                value = value.strip()
                names.append(name)
                headers[key] = headers[key] + ", " + value if key in headers else value
            if "chunked" in headers.get("transfer-encoding", "").lower():
                self._fail(411, "chunked request bodies are not supported; send Content-Length")
                return
            length = headers.get("content-length", "0")
            if not length.isdigit():
                self._fail(400, "invalid Content-Length")
                return
            length = int(length)
            if length > self.server.max_body:
                self._fail(413, "request body too large")
                return
            total = end + 4 + length
            if len(self.buf) < total:
                if (length and not self.sent_continue
                        and headers.get("expect", "").lower() == "100-continue"):
                    self.sent_continue = True
                    self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                return
            body = bytes(self.buf[end + 4:total])
            del self.buf[:total]
            self.sent_continue = False
            request = Request(method, target, version, headers, names, body, self.client_ip)
            try:
                response = self.server.handler(request)
            except Exception as exc:  # a handler bug must not kill the connection loop
                self.server.on_error(request, exc)
                response = Response(500, b'{"status":500,"error":"emulator internal error"}',
                                    content_type="application/json")
            if response.delay or response.stream is not None:
                self.busy = True
                self.transport.pause_reading()
                asyncio.get_running_loop().create_task(self._send_async(request, response))
                return
            self._send(request, response)

    def _fail(self, status, message):
        body = ('{"status":%d,"error":"%s"}' % (status, message)).encode()
        self.transport.write(self._head(status, [("Content-Type", "application/json")],
                                        len(body), False) + body)
        self.closed = True
        self.transport.close()

    # -- responses ---------------------------------------------------------

    def _head(self, status, headers, length, keep_alive):
        out = ["HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, "Unknown"))]
        for name, value in headers:
            out.append("%s: %s\r\n" % (name, value))
        out.append("Content-Length: %d\r\n" % length)
        out.append("Connection: %s\r\n" % ("keep-alive" if keep_alive else "close"))
        return ("".join(out)).encode("latin-1") + b"Date: " + _http_date(self.server) + b"\r\n\r\n"

    def _send(self, request, response):
        keep = request.keep_alive and response.mode == "normal"
        if response.mode == "close_before":
            self.closed = True
            self.transport.close()
        elif response.mode == "close_mid":
            body = response.body
            self.transport.write(self._head(response.status, response.headers, len(body), True)
                                 + body[:len(body) // 2])
            self.closed = True
            self.transport.close()
        else:
            self.transport.write(self._head(response.status, response.headers,
                                            len(response.body), keep) + response.body)
            if not keep:
                self.closed = True
                self.transport.close()
        if response.on_sent is not None:
            response.on_sent(response)

    async def _send_async(self, request, response):
        try:
            if response.delay:
                await asyncio.sleep(response.delay)
            if self.closed:
                return
            if response.stream is None:
                self._send(request, response)
            else:
                length, chunks = response.stream
                keep = request.keep_alive
                self.transport.write(self._head(response.status, response.headers, length, keep))
                for chunk in chunks:
                    if self.closed:
                        break
                    if isinstance(chunk, (int, float)):
                        await asyncio.sleep(chunk)    # a pause (trickle)
                        continue
                    self.transport.write(chunk)
                    if self._can_write is not None and not self._can_write.done():
                        await self._can_write
                if not keep and not self.closed:
                    self.closed = True
                    self.transport.close()
                if response.on_sent is not None:
                    response.on_sent(response)
        finally:
            self.busy = False
            if not self.closed:
                self.transport.resume_reading()
                self._process()


class HTTPServer:
    """Owns the listening socket and the open connections."""

    def __init__(self, handler, on_error, max_body=16 * 1024 * 1024, time=time.time):
        self.handler = handler
        self.time = time               # Unix seconds for the Date header
        self.date_cache = (None, b"")
        self.on_error = on_error
        self.max_body = max_body
        self.connections = set()
        self.server = None

    async def start(self, host, port):
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: HTTPProtocol(self), host, port,
                                               backlog=4096, reuse_address=True)
        sock = self.server.sockets[0]
        return sock.getsockname()[1]

    async def close(self):
        if self.server is not None:
            self.server.close()
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        if self.server is not None:
            await self.server.wait_closed()
