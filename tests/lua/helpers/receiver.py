#!/usr/bin/env python3
"""Loopback webhook receiver and signer for the Lua tests.

    receiver.py listen [MAX_SECONDS]
        Serves HTTP on 127.0.0.1 (a free port).  Prints "listening on PORT"
        first, then one JSON line per POST received:
        {"path": ..., "headers": {lower-case name: value}, "body": text}
        Answers 204.  Exits after MAX_SECONDS (default 60), or when killed.

    receiver.py sign SECRET MSG_ID TIMESTAMP BODY
        Prints the Standard Webhooks signature header value "v1,<base64>"
        of BODY for the secret "whsec_<base64>".
"""
import base64
import hashlib
import hmac
import http.server
import json
import sys
import threading


def sign(secret, msg_id, timestamp, body):
    key = base64.b64decode(secret[len("whsec_"):])
    mac = hmac.new(key, ("%s.%s." % (msg_id, timestamp)).encode() + body,
                   hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        length = min(length, 1 << 20)
        body = self.rfile.read(length)
        record = {
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("utf-8", "replace"),
        }
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def listen(max_seconds):
    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    sys.stdout.write("listening on %d\n" % server.server_address[1])
    sys.stdout.flush()
    timer = threading.Timer(max_seconds, server.shutdown)
    timer.daemon = True
    timer.start()
    server.serve_forever()
    return 0


def main(argv):
    if len(argv) >= 2 and argv[1] == "listen":
        return listen(float(argv[2]) if len(argv) > 2 else 60.0)
    if len(argv) == 6 and argv[1] == "sign":
        print(sign(argv[2], argv[3], argv[4], argv[5].encode()))
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
