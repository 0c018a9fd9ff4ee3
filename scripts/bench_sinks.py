"""Stand-alone sinks for `make bench`: an HTTP server and an SMTP server (aiosmtpd), each
recording one (time, recipient) pair per delivery, read back as JSON from GET /stats (on the
HTTP sink's own port; the SMTP sink serves it on a second port). Run as separate processes so
they don't share the bench's CPU/GIL.

    python -m scripts.bench_sinks http PORT
    python -m scripts.bench_sinks smtp PORT STATS_PORT
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _user_id(body: bytes) -> str | None:
    """The webhook payload's userId (None for a body that is not Herald's JSON)."""
    try:
        return json.loads(body).get("userId")
    except (ValueError, AttributeError):
        return None


async def http_sink(port: int) -> None:
    deliveries: list[tuple[float, str | None]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                payload = await reader.readexactly(length) if length else b""
                if head.startswith(b"GET /stats"):
                    body = json.dumps(deliveries).encode()
                else:
                    deliveries.append((time.time(), _user_id(payload)))
                    body = b"ok"
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=512)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def stats_server(port: int, deliveries: list) -> ThreadingHTTPServer:
    """GET /stats on `port`: the deliveries so far, as a JSON list of [time, recipient]."""

    class Stats(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(list(deliveries)).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return ThreadingHTTPServer(("127.0.0.1", port), Stats)


def smtp_sink(port: int, stats_port: int) -> None:
    from aiosmtpd.controller import Controller

    deliveries: list[tuple[float, str]] = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            now = time.time()
            deliveries.extend((now, rcpt) for rcpt in envelope.rcpt_tos)
            return "250 OK"

    stats = stats_server(stats_port, deliveries)
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        stats.serve_forever()
    finally:
        controller.stop()


if __name__ == "__main__":
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "http":
        asyncio.run(http_sink(port))
    else:
        smtp_sink(port, int(sys.argv[3]))
