"""The processes of `make bench` (parts, workers, sinks, gunicorn, Redis), stopped whatever
happens: SIGTERM to the process group, a grace period, then SIGKILL, and always reaped.

A process is waited for without being reaped first (waitid WNOWAIT), so while its leftovers
are killed by group or session id, that id cannot have been reused by another process."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def worker_command() -> list[str]:
    """The Procfile's worker line (what production runs), with this virtualenv's rq."""
    line = next(x for x in (ROOT / "Procfile").read_text().splitlines() if x.startswith("worker:"))
    args = shlex.split(line.split(":", 1)[1])
    return [str(Path(sys.executable).parent / args[0]), *args[1:]]


def web_command(port: int) -> list[str]:
    """The Procfile's web line (gunicorn with gunicorn.conf.py, what production runs), with this
    virtualenv's gunicorn, on 127.0.0.1:port."""
    line = next(x for x in (ROOT / "Procfile").read_text().splitlines() if x.startswith("web:"))
    args = shlex.split(line.split(":", 1)[1])
    return [str(Path(sys.executable).parent / args[0]), *args[1:-1], "-b", f"127.0.0.1:{port}", args[-1]]


def exited(proc: subprocess.Popen, timeout: float) -> bool:
    """True once proc has exited (within `timeout` s), leaving it unreaped."""
    deadline = time.monotonic() + timeout
    while proc.returncode is None:
        if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _groups(pid: int) -> set[int]:
    """The process groups of pid and of its descendants: an RQ work horse (the worker's child
    that does the sending) puts itself in a group of its own."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,pgid="], capture_output=True, text=True).stdout
    rows = [tuple(int(x) for x in line.split()) for line in out.splitlines() if line.strip()]
    family, grown = {pid}, True
    while grown:
        more = {p for p, parent, _ in rows if parent in family} - family
        family, grown = family | more, bool(more)
    return {pid} | {group for p, _, group in rows if p in family}


def kill(proc: subprocess.Popen) -> None:
    """kill -9 of the process's group and of its descendants' groups (a crash, work horse
    included), reaped."""
    for group in _groups(proc.pid):
        signal_group(group, signal.SIGKILL)
    proc.wait()


def stop(*procs: subprocess.Popen, grace: float = 30.0) -> None:
    """SIGTERM to each process group; SIGKILL to any still there after `grace` s; reaped."""
    live = [p for p in procs if p.returncode is None]
    for proc in live:
        signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in live:
        if not exited(proc, deadline - time.monotonic()):
            kill(proc)
            continue
        signal_group(proc.pid, signal.SIGKILL)  # whatever of its group outlived it
        proc.wait()


def _session(sid: int) -> list[int]:
    """The live (not zombie) processes of a session."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,sid=,stat="], capture_output=True, text=True).stdout
    rows = [line.split() for line in out.splitlines() if line.strip()]
    return [int(pid) for pid, s, stat in rows if int(s) == sid and not stat.startswith("Z")]


def end_session(leader: subprocess.Popen, grace: float) -> None:
    """Stop a session leader (SIGTERM to its group: it stops what it started), then SIGKILL
    everything left in its session, and reap it."""
    if not exited(leader, 0):
        signal_group(leader.pid, signal.SIGTERM)
    if not exited(leader, grace):
        signal_group(leader.pid, signal.SIGKILL)
        exited(leader, 10)
    deadline = time.monotonic() + 10
    while (left := _session(leader.pid)) and time.monotonic() < deadline:
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    leader.wait()


class Children:
    """The processes a benchmark part starts, each in its own process group; leaving the
    block, whatever happened, stops and reaps every one."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *exc) -> None:
        stop(*self.procs)

    def spawn(self, args: list[str], **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(args, cwd=ROOT, process_group=0, **kwargs)
        self.procs.append(proc)
        return proc

    def worker(self) -> subprocess.Popen:
        return self.spawn(worker_command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _unwind(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # unwind once; the bench kills what is left
    raise SystemExit(128 + signum)


def main(parts: dict) -> None:
    """Run the part named on the command line and print its result as one JSON line. SIGTERM
    (the bench's timeout or Ctrl-C) unwinds it, so its finally blocks stop what it started."""
    signal.signal(signal.SIGTERM, _unwind)
    print(json.dumps(parts[sys.argv[1]]()))
