"""Helpers for engine tests: run queued RQ jobs with a real worker (burst, in-process or as
the Procfile's command)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rq import SimpleWorker

from dashboard.extensions import QUEUE_NAMES, get_queue, get_redis

ROOT = Path(__file__).resolve().parent.parent


def drain() -> None:
    """Run every queued job in this process (real RQ, real Redis, no fork)."""
    worker = SimpleWorker([get_queue(n) for n in QUEUE_NAMES], connection=get_redis())
    worker.work(burst=True)


def worker_env(app, **extra) -> dict:
    env = dict(os.environ, HERALD_ENV="testing", SECRET_KEY="test-secret-key",
               DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"], REDIS_URL=app.config["REDIS_URL"],
               HERALD_STALL_SECONDS=str(app.config["HERALD_STALL_SECONDS"]),
               HERALD_BATCH_CHUNK=str(app.config["HERALD_BATCH_CHUNK"]),
               HERALD_WEBHOOK_ALLOW_PRIVATE="1" if app.config["HERALD_WEBHOOK_ALLOW_PRIVATE"] else "")
    env.update(extra)
    return env


def start_worker(app, burst: bool = False, **extra) -> subprocess.Popen:
    rq = Path(sys.executable).parent / "rq"
    args = [str(rq), "worker", "--with-scheduler", "-c", "dashboard.rq_settings",
            "-w", "dashboard.worker.HeraldWorker", *QUEUE_NAMES]
    if burst:
        args.insert(2, "--burst")
    log = open(os.environ.get("HERALD_WORKER_LOG", os.devnull), "a")  # noqa: SIM115 (lives with the process)
    return subprocess.Popen(args, cwd=ROOT, env=worker_env(app, **extra), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def drain_until_idle(timeout: float = 30.0) -> None:
    """Run jobs, promoting scheduled retries when due, until nothing is queued or scheduled."""
    import time

    from rq.job import Job

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        drain()
        waiting = False
        for name in QUEUE_NAMES:
            queue = get_queue(name)
            registry = queue.scheduled_job_registry
            for job_id in registry.get_jobs_to_schedule(time.time()) if hasattr(
                    registry, "get_jobs_to_schedule") else []:
                job = Job.fetch(job_id, connection=get_redis())
                registry.remove(job)
                queue.enqueue_job(job)
            if registry.count or queue.count:
                waiting = True
        if not waiting:
            return
        time.sleep(0.05)
    raise AssertionError("jobs still pending after the timeout")


def wait_for(predicate, timeout: float, what: str):
    """Poll until predicate() is truthy (and return it), or fail naming what never happened."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (RQ's work horse runs in a process group of its own)."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
    children: dict[int, list[int]] = {}
    for line in out.splitlines():
        child, parent = (int(x) for x in line.split())
        children.setdefault(parent, []).append(child)
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def signal_tree(proc: subprocess.Popen, sig: int) -> None:
    """Signal a worker, its scheduler and its work horse at once, as a platform (or a crash) does."""
    import signal as signals

    for pid in process_tree(proc.pid):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    if sig == signals.SIGKILL:
        proc.wait(timeout=10)


def kill_9(proc: subprocess.Popen) -> None:
    """kill -9 of a worker and everything it started (the horse mid-step included)."""
    import signal as signals

    signal_tree(proc, signals.SIGKILL)


def stop_worker(proc: subprocess.Popen) -> None:
    """SIGTERM (the worker ends its slice and forwards the stop to its horse), then SIGKILL."""
    import signal as signals

    os.killpg(proc.pid, signals.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signals.SIGKILL)
