"""A real gunicorn serving the test database, for what the test client hides (streamed
responses outliving the request, cookies, proxy headers)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.engine import worker_env

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def gunicorn(app, *args: str, worker_class: str = "gthread", **env):
    """Yields the base URL of `gunicorn wsgi:app` on a free port: gthread with 4 threads, or as
    production runs it (gunicorn.conf.py's gevent workers) with worker_class="gevent"."""
    port = free_port()
    kind = ["-k", "gthread", "--threads", "4"] if worker_class == "gthread" else ["-k", worker_class]
    command = [str(Path(sys.executable).parent / "gunicorn"), "-b", f"127.0.0.1:{port}", *kind, *args, "wsgi:app"]
    log = open(os.environ.get("HERALD_WEB_LOG", os.devnull), "a")  # noqa: SIM115 (lives with the process)
    proc = subprocess.Popen(command, cwd=ROOT, env=worker_env(app, **env), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(base + "/healthz", timeout=1)
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("gunicorn did not start") from None
                time.sleep(0.1)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
