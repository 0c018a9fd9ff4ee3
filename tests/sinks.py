"""Real servers for channel tests: an HTTP sink that can be told to answer 429/500/400 or
hang, and an aiosmtpd SMTP server that can refuse addresses."""

from __future__ import annotations

import collections
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller


class HttpSink:
    """Records every request; `plan[userId]` is a list of statuses to answer before 200."""

    def __init__(self, tls=None):
        """`tls`: an ssl.SSLContext with the server's certificate, to listen for https."""
        self.requests: list[dict] = []
        self.plan: dict[str, list] = collections.defaultdict(list)
        self.default = 200
        self.hang_seconds = 3.0  # how long a "hang" answer stalls before its 200
        self.error_body = b"nope"  # what a non-2xx answer carries (Herald must never keep or show it)
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                data = json.loads(body or b"{}")
                with sink.lock:
                    sink.requests.append({"at": time.monotonic(), "headers": dict(self.headers), "body": body,
                                          "json": data})
                    queue = sink.plan.get(data.get("userId"), [])
                    answer = queue.pop(0) if queue else sink.default
                if answer == "hang":
                    time.sleep(sink.hang_seconds)
                    answer = 200
                status, extra = (answer if isinstance(answer, tuple) else (answer, {}))
                payload = b"ok" if status < 300 else sink.error_body
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def for_user(self, user_id: str) -> list[dict]:
        return [r for r in self.requests if r["json"].get("userId") == user_id]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class _SmtpHandler:
    def __init__(self, box):
        self.box = box

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0]
        if local.startswith("bad"):
            return "550 5.1.1 no such user"
        if local.startswith("later"):
            count = self.box.temp_failures[address]
            if count < 2:
                self.box.temp_failures[address] += 1
                return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.box.messages.append({"at": time.monotonic(), "to": list(envelope.rcpt_tos), "from": envelope.mail_from,
                                  "data": envelope.content.decode("utf-8", "replace")})
        return "250 Message accepted"


class SmtpBox:
    """An SMTP server on a free port: addresses bad* get 550, later* get 451 twice."""

    def __init__(self):
        self.messages: list[dict] = []
        self.temp_failures: dict[str, int] = collections.defaultdict(int)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.controller = Controller(_SmtpHandler(self), hostname="127.0.0.1", port=self.port)
        self.controller.start()
        self.url = f"smtp://127.0.0.1:{self.port}"

    def close(self):
        self.controller.stop()
