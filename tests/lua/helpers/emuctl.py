#!/usr/bin/env python3
"""Tiny HTTP helper for the Lua tests (the Lua test runner has no sockets).

    emuctl.py METHOD URL [BODY_JSON | @FILE [CONTENT_TYPE]]

Prints the HTTP status on the first line and the response body after it.
Loopback only: refuses any other host.
"""
import sys
import urllib.error
import urllib.parse
import urllib.request


def main(argv):
    method, url = argv[1], argv[2]
    host = urllib.parse.urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        print("0\nrefusing non-loopback host %s" % host)
        return 2
    data, ctype = None, "application/json"
    if len(argv) > 3:
        if argv[3].startswith("@"):
            with open(argv[3][1:], "rb") as fh:
                data = fh.read()
            ctype = argv[4] if len(argv) > 4 else "application/octet-stream"
        else:
            data = argv[3].encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, body = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    sys.stdout.write("%d\n" % status)
    sys.stdout.write(body.decode("utf-8", "replace"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
