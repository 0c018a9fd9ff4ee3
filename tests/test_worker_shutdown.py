"""SIGTERM stops the Procfile's worker gracefully, with real processes: a busy worker has its
job stop at the next step boundary (dashboard.shutdown) and exits; an idle one exits; so does one
whose Redis has gone away. Each within 10 s of a single SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from rq import Worker
from rq.job import Job, JobStatus
from sqlalchemy import text

from dashboard.extensions import db, get_queue, get_redis
from tests.engine import start_worker

EXIT_BUDGET = 10.0  # seconds from the SIGTERM to the worker process having exited
PROBE = "tests.job_probes.stepper"
KEY = "herald-test:stepper"


@pytest.fixture
def worker_log(tmp_path, monkeypatch) -> Path:
    log = tmp_path / "worker.log"
    monkeypatch.setenv("HERALD_WORKER_LOG", str(log))
    return log


def _tail(log: Path) -> str:
    return log.read_text()[-3000:] if log.exists() else "(no log)"


def _wait(predicate, timeout: float, what: str, proc: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            raise AssertionError(f"the worker exited (rc {proc.returncode}) while waiting for {what}; "
                                 f"log tail:\n{_tail(log)}")
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; log tail:\n{_tail(log)}")


def _alive(pid: int) -> bool:
    """Running (a zombie, or a pid that is gone, is not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: fall back to a signal probe
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    state = next((line.split()[1] for line in status.splitlines() if line.startswith("State:")), "?")
    return state != "Z"


def _reap(proc: subprocess.Popen | None, *pids: int) -> None:
    """Whatever happened, leave no process behind: the worker's group (worker, scheduler) and the
    horse, which runs in a group of its own."""
    if proc is not None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    for pid in pids:
        if pid and _alive(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _wait_idle(proc, log, connection, timeout: float = 30.0) -> None:
    def idle():
        return any(w.pid == proc.pid and w.get_state() == "idle" for w in Worker.all(connection=connection))

    _wait(idle, timeout, "the worker to be up and idle", proc, log)


def _exit_time(proc: subprocess.Popen, since: float, log: Path, what: str) -> float:
    try:
        proc.wait(timeout=EXIT_BUDGET + 5)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{what}: the worker was still running {EXIT_BUDGET + 5:.0f} s after one SIGTERM; "
                             f"log tail:\n{_tail(log)}") from None
    took = time.monotonic() - since
    assert took <= EXIT_BUDGET, f"{what}: the worker took {took:.2f} s to exit (budget {EXIT_BUDGET} s)"
    print(f"\n{what}: worker exited {took:.2f} s after SIGTERM (rc {proc.returncode})")
    return took


def _probe(field: str = "state"):
    value = get_redis().hget(KEY, field)
    return value.decode() if value is not None else None


def _busy_worker(app, log):
    """A worker running the stepper probe (0.1 s steps, up to 60 s), a few steps in."""
    proc = start_worker(app)
    job = get_queue("default").enqueue(PROBE, KEY, 60.0, 0.1, job_timeout=120)
    _wait(lambda: int(_probe("steps") or 0) >= 3, 30, "the probe job to be running", proc, log)
    return proc, job, int(_probe("pid"))


def _assert_probe_stopped_on_request(job, log):
    state, steps = _probe("state"), int(_probe("steps") or 0)
    assert state == "stopped-on-request", (
        f"the probe did not observe the stop request (state {state!r}, {steps} steps); log tail:\n{_tail(log)}")
    assert steps < 300, f"the probe ran {steps} steps (30 s): it was not stopped at a step boundary"
    job = Job.fetch(job.id, connection=get_redis())
    assert job.get_status() == JobStatus.FINISHED, f"the probe job ended as {job.get_status()}, not finished"
    assert job.return_value() == "stopped-on-request"


def test_sigterm_to_busy_worker_stops_its_job_at_a_step_and_exits(app, worker_log):
    proc = horse = None
    try:
        proc, job, horse = _busy_worker(app, worker_log)
        sent = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)  # the worker process only: it must tell its horse
        _exit_time(proc, sent, worker_log, "busy, SIGTERM to the worker")
        _assert_probe_stopped_on_request(job, worker_log)
        assert not _alive(horse), "the work horse outlived its worker"
    finally:
        _reap(proc, horse)


def test_sigterm_to_every_process_while_busy(app, worker_log):
    """As platforms do (Heroku signals every process of the dyno at once): the worker's process
    group (worker, scheduler) and the horse, which RQ puts in a group of its own."""
    proc = horse = None
    try:
        proc, job, horse = _busy_worker(app, worker_log)
        sent = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            os.kill(horse, signal.SIGTERM)
        except ProcessLookupError:  # already done: its worker told it first
            pass
        _exit_time(proc, sent, worker_log, "busy, SIGTERM to every process")
        _assert_probe_stopped_on_request(job, worker_log)
        assert not _alive(horse), "the work horse outlived its worker"
    finally:
        _reap(proc, horse)


def test_sigterm_to_idle_worker_exits(app, worker_log):
    proc = None
    try:
        proc = start_worker(app)
        _wait_idle(proc, worker_log, get_redis())
        sent = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        _exit_time(proc, sent, worker_log, "idle, SIGTERM to the worker")
        assert not any(w.pid == proc.pid for w in Worker.all(connection=get_redis())), \
            "the worker did not register its death"
    finally:
        _reap(proc)


def _private_redis(app, tmp_path):
    from dashboard import create_app
    from scripts import redis_server

    redis_proc, url = redis_server.start(tmp_path / "redis", redis_server.free_port())
    private = create_app({"HERALD_ENV": "testing", "TESTING": True, "SECRET_KEY": "test-secret-key",
                          "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], "REDIS_URL": url,
                          "HERALD_STALL_SECONDS": app.config["HERALD_STALL_SECONDS"],
                          "HERALD_BATCH_CHUNK": app.config["HERALD_BATCH_CHUNK"]})
    return redis_proc, private


def test_sigterm_exits_while_redis_is_unreachable(app, tmp_path, worker_log):
    redis_proc, private = _private_redis(app, tmp_path)
    proc = None
    try:
        with private.app_context():
            proc = start_worker(private)
            _wait_idle(proc, worker_log, get_redis())
            redis_proc.kill()
            redis_proc.wait(timeout=10)
            time.sleep(1.5)  # the worker notices, and is retrying
            assert proc.poll() is None, f"the worker died with Redis; log tail:\n{_tail(worker_log)}"
            sent = time.monotonic()
            os.kill(proc.pid, signal.SIGTERM)
            _exit_time(proc, sent, worker_log, "idle, Redis unreachable")
    finally:
        _reap(proc)
        redis_proc.kill()


def test_sigterm_exits_while_waiting_for_redis_after_it_vanished_mid_job(app, tmp_path, worker_log):
    """Redis goes away mid-job: the worker's monitoring fails and it waits for Redis to come back
    (HeraldWorker.work / _wait_for_redis). One SIGTERM must still stop the job and the worker."""
    redis_proc, private = _private_redis(app, tmp_path)
    progress = tmp_path / "progress.json"
    proc = horse = None

    def read_progress():
        try:
            return json.loads(progress.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    try:
        with private.app_context():
            proc = start_worker(private)
            get_queue("default").enqueue(PROBE, None, 60.0, 0.1, str(progress), job_timeout=120)
            _wait(lambda: read_progress().get("steps", 0) >= 3, 30, "the probe job to be running", proc, worker_log)
            horse = read_progress()["pid"]
            redis_proc.kill()
            redis_proc.wait(timeout=10)
            # The worker heartbeats its job every 10 s (job_monitoring_interval): then it notices.
            _wait(lambda: "waiting for it to come back" in worker_log.read_text(), 15,
                  "the worker to wait for Redis", proc, worker_log)
            assert read_progress()["state"] == "running" and _alive(horse), "the probe ended on its own"
            sent = time.monotonic()
            os.kill(proc.pid, signal.SIGTERM)
            _exit_time(proc, sent, worker_log, "busy, waiting for Redis")
            assert read_progress()["state"] == "stopped-on-request", \
                f"the probe did not observe the stop request: {read_progress()}"
            assert not _alive(horse), "the work horse outlived its worker"
    finally:
        _reap(proc, horse)
        redis_proc.kill()


def test_sigterm_during_the_sweep_is_not_swallowed(app, worker_log):
    """The original bug: RQ's idle shutdown raises StopRequested from the signal handler, and when
    that happened inside the Herald sweep its `except Exception` swallowed it, so the worker kept
    running until a second signal. The sweep is held on a table lock while the SIGTERM arrives."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("holding the sweep on a lock needs PostgreSQL (SQLite's WAL never blocks readers)")

    def sweep_blocked():
        with db.engine.connect() as conn:  # a fresh transaction each time: pg_stat_activity is snapshotted
            return conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()")).scalar()

    proc = None
    lock = db.engine.connect()
    try:
        lock.execute(text("LOCK TABLE campaigns IN ACCESS EXCLUSIVE MODE"))
        proc = start_worker(app)  # its first sweep runs at start, and waits on the lock
        _wait(sweep_blocked, 30, "the worker's sweep to wait on the lock", proc, worker_log)
        sent = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        time.sleep(0.5)
        lock.rollback()  # the sweep goes on, and finishes
        _exit_time(proc, sent, worker_log, "SIGTERM during the sweep")
        assert "Herald sweep failed" not in worker_log.read_text(), "the sweep was interrupted halfway"
    finally:
        lock.close()
        _reap(proc)


def test_a_second_sigterm_kills_a_job_that_ignores_the_first(app, worker_log):
    """RQ's cold shutdown is kept: a job that never looks at the stop flag is waited for after
    one SIGTERM, and killed by a second one (at least 1 s later: RQ ignores quicker repeats)."""
    proc = None
    try:
        proc = start_worker(app)
        _wait_idle(proc, worker_log, get_redis())
        job = get_queue("default").enqueue("time.sleep", 60, job_timeout=120)
        _wait(lambda: job.get_status(refresh=True) == JobStatus.STARTED, 30, "the job to start", proc, worker_log)
        os.kill(proc.pid, signal.SIGTERM)
        time.sleep(1.5)
        assert proc.poll() is None, "one SIGTERM must not kill a job that cannot stop at a step"
        sent = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        _exit_time(proc, sent, worker_log, "second SIGTERM, job ignoring the flag")
        assert job.get_status(refresh=True) != JobStatus.FINISHED
    finally:
        _reap(proc)
