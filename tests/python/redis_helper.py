"""A throwaway redis-server for the rate_limit_scope "redis://" tests and
bench part 6: Debian's redis-server on a free loopback port, no
persistence (--save "" --appendonly no), never the system service.

    with RedisServer() as r:
        url = r.url          # redis://127.0.0.1:PORT
        r.stop(); r.start()  # kill and restart on the same port
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def available():
    return shutil.which("redis-server") is not None


class RedisServer:
    def __init__(self, port=None):
        self.port = port or free_port()
        self.proc = None
        self.dir = tempfile.mkdtemp(prefix="sa-redis-")

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"*1\r\n$4\r\nPING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def command(self, *args):
        """One command; the raw reply bytes."""
        msg = b"*%d\r\n" % len(args) + b"".join(
            b"$%d\r\n%s\r\n" % (len(a), a) for a in (x.encode() for x in map(str, args)))
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(msg)
            return s.recv(65536)

    def start(self, timeout=10.0):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir,
             "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.ping():
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("redis-server did not start on port %d" % self.port)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
