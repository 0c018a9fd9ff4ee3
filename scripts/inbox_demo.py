"""The inbox demo host that `make run` starts: a stand-in for a customer's own app, served from
another origin than Herald under a strict Content-Security-Policy, embedding `<herald-inbox>` for one
demo user.

Its server side does what a customer's server does: mint the user's inbox token (here in-process with
`dashboard.services.inbox.issue_token`; a real app calls `POST /api/v1/users/{userId}/inbox-token`
with an API key), put it in the page, and hand fresh ones to the page's own script at `/token`.

    python scripts/inbox_demo.py --herald http://127.0.0.1:5000 --port 5001
"""

from __future__ import annotations

import argparse
import html
import json
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from string import Template
from urllib.parse import parse_qs, urlsplit

HERE = Path(__file__).resolve().parent
DEFAULT_USER = "demo-001"  # the first user `flask seed-demo` puts in the directory
FILES = {"/demo.js": ("inbox_demo.js", "text/javascript; charset=utf-8"),
         "/demo.css": ("inbox_demo.css", "text/css; charset=utf-8"),
         "/banner.svg": ("inbox_demo.svg", "image/svg+xml")}


def content_security_policy(herald: str) -> str:
    """What a careful customer sends: nothing inline, scripts from itself and Herald, calls to itself (/token)
    and Herald only."""
    return (f"default-src 'self'; script-src 'self' {herald}; connect-src 'self' {herald}; style-src 'self'; "
            "img-src * data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def app_minter() -> Callable[[str], str]:
    """Tokens from Herald's own service, with the same settings as `make run`'s web process."""
    sys.path.insert(0, str(HERE.parent))
    from dashboard import create_app
    from dashboard.services import inbox

    app = create_app()
    lock = threading.Lock()

    def mint(user_id: str) -> str:
        with lock, app.app_context():
            return inbox.issue_token(user_id)[0]
    return mint


class DemoHost(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], herald: str, mint: Callable[[str], str],
                 user: str = DEFAULT_USER):
        super().__init__(address, DemoHandler)
        self.herald = herald.rstrip("/")
        self.mint = mint
        self.user = user
        self.page = Template((HERE / "inbox_demo.html").read_text(encoding="utf-8"))

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class DemoHandler(BaseHTTPRequestHandler):
    server: DemoHost

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def do_GET(self):  # noqa: N802 - http.server's name
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        user = (query.get("user") or [self.server.user])[0].strip() or self.server.user
        if parts.path == "/":
            self._page(user)
        elif parts.path == "/token":
            self._token(user)
        elif parts.path in FILES:
            name, kind = FILES[parts.path]
            self._send(200, (HERE / name).read_bytes(), kind)
        elif parts.path == "/favicon.ico":
            self._send(204, b"", "image/x-icon")
        else:
            self._send(404, b"Not found", "text/plain; charset=utf-8")

    def _page(self, user: str) -> None:
        try:
            token = self.server.mint(user)
        except Exception as err:  # noqa: BLE001 - shown on the page: a bad ?user=, Herald's database missing
            token, problem = "", f"Could not mint a token for {user}: {getattr(err, 'message', err)}"
        else:
            problem = ""
        values = {key: html.escape(value, quote=True) for key, value in {
            "herald": self.server.herald, "token": token, "user": user, "problem": problem,
            "origin": self.server.url}.items()}
        body = self.server.page.safe_substitute(values).encode("utf-8")
        self._send(200, body, "text/html; charset=utf-8",
                   {"Content-Security-Policy": content_security_policy(self.server.herald)})

    def _token(self, user: str) -> None:
        try:
            token = self.server.mint(user)
        except Exception as err:  # noqa: BLE001 - the widget then shows its expired state
            body = json.dumps({"error": str(getattr(err, "message", err))})
            self._send(503, body.encode(), "application/json")
            return
        self._send(200, json.dumps({"token": token, "userId": user}).encode(), "application/json")

    def _send(self, status: int, body: bytes, kind: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--herald", required=True, help="Herald's origin, e.g. http://127.0.0.1:5000")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--user", default=DEFAULT_USER, help="the demo user (default: %(default)s)")
    args = parser.parse_args()
    server = DemoHost((args.host, args.port), args.herald, app_minter(), args.user)
    print(f"Inbox demo for {args.user} at {server.url}/ (Herald at {args.herald})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
