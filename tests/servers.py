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


def start(app, port: int, *args: str, worker_class: str = "gthread", **env) -> subprocess.Popen:
    """`gunicorn wsgi:app` on 127.0.0.1:port, once it answers /healthz (a fixed port lets a test restart it)."""
    kind = ["-k", "gthread", "--threads", "4"] if worker_class == "gthread" else ["-k", worker_class]
    command = [str(Path(sys.executable).parent / "gunicorn"), "-b", f"127.0.0.1:{port}", *kind, *args, "wsgi:app"]
    log = open(os.environ.get("HERALD_WEB_LOG", os.devnull), "a")  # noqa: SIM115 (lives with the process)
    proc = subprocess.Popen(command, cwd=ROOT, env=worker_env(app, **env), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    proc.log = log
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except httpx.HTTPError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop(proc)
                raise AssertionError("gunicorn did not start") from None
            time.sleep(0.1)


def stop(proc: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM (gunicorn's graceful stop), SIGKILL after `timeout`."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    proc.log.close()


@contextlib.contextmanager
def gunicorn(app, *args: str, worker_class: str = "gthread", **env):
    """Yields the base URL of `gunicorn wsgi:app` on a free port: gthread with 4 threads, or as
    production runs it (gunicorn.conf.py's gevent workers) with worker_class="gevent"."""
    port = free_port()
    proc = start(app, port, *args, worker_class=worker_class, **env)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)
