"""The RQ worker class named in the Procfile: builds the app before forking work horses, and
runs Herald's sweep (lost chunks, missed schedules) with RQ's periodic maintenance.

Stopping (SIGTERM or Ctrl-C, e.g. a deploy or a platform restart):

* The work horse never dies of SIGTERM: it sets `dashboard.shutdown`'s flag, which the sending
  engine polls between steps, so the running slice ends at its next step boundary (recording
  what it sent, handing the rest back). Platforms such as Heroku signal every process at once,
  so a horse signalled directly behaves the same as one told by its worker.
* The worker forwards the request to its horse, and then exits as soon as the horse is done,
  whether it was busy or idle, and whether Redis answers or not.
* A second signal (at least 1 s later) is RQ's cold shutdown: the horse is killed.

What RQ does by itself, and why it is overridden: a busy worker only waits for its job to end
(the horse is never told, so a long send ran on); an idle one raises `StopRequested` from the
signal handler wherever it happens to be. When that was inside the Herald sweep, the sweep's
`except Exception` swallowed it, and RQ keeps no other record of an idle stop request: the
worker went on idling until a second signal. When Redis was down, RQ's teardown raised
ConnectionError after the request, and the Redis-outage retry loop below (which looked only at
`_stop_requested`, never set on that path) waited for Redis forever. Here the request is always
recorded, and `StopRequested` is only raised inside the blocking wait for a job (or at the end
of maintenance), where nothing can swallow it.
"""

from __future__ import annotations

import logging
import os
import signal
import time

import redis
from rq import Worker
from rq.connections import parse_connection
from rq.defaults import DEFAULT_JOB_MONITORING_INTERVAL, DEFAULT_MAINTENANCE_TASK_INTERVAL, DEFAULT_WORKER_TTL
from rq.exceptions import StopRequested
from rq.utils import now

from dashboard import jobs, logs, metrics, queue_state, shutdown

# Blocked around fork() so that a new horse only ever sees them once its own handlers are in place.
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
SCHEDULER_STOP_SECONDS = 3.0  # the scheduler checks its stop flag every second
HORSE_REAP_SECONDS = 8.0  # on exit, for a horse RQ lost track of (Redis vanished mid-job)
_RECORD_ATTRIBUTES = {*vars(logging.makeLogRecord({})), "message", "asctime"}  # not usable as `extra` keys


class HeraldWorker(Worker):
    def __init__(self, *args, **kwargs):
        logs.configure()  # JSON lines in production, with job/chunk/campaign ids (replaces RQ's handlers)
        # Short TTLs so a killed worker is noticed quickly and an idle one sweeps often.
        # (rq's command line passes its own defaults, so replace those, keep explicit choices)
        kwargs["default_worker_ttl"] = None
        if kwargs.get("worker_ttl") in (None, DEFAULT_WORKER_TTL):
            kwargs["worker_ttl"] = int(os.environ.get("HERALD_WORKER_TTL", "40"))
        if kwargs.get("job_monitoring_interval") in (None, DEFAULT_JOB_MONITORING_INTERVAL):
            kwargs["job_monitoring_interval"] = 10
        if kwargs.get("maintenance_interval") in (None, DEFAULT_MAINTENANCE_TASK_INTERVAL):
            kwargs["maintenance_interval"] = int(os.environ.get("HERALD_SWEEP_SECONDS", "10"))
        super().__init__(*args, **kwargs)
        # True only while blocked waiting for a job: the one place a stop request may interrupt.
        self._interruptible = False
        jobs.get_app()

    # -- the work loop ---------------------------------------------------------------------

    def work(self, *args, **kwargs):
        """Survive a Redis outage: RQ's loop gives up when Redis vanishes mid-job; wait for it to
        answer again and start over (the sweep re-enqueues whatever Redis forgot)."""
        try:
            while True:
                try:
                    return super().work(*args, **kwargs)
                except redis.exceptions.ConnectionError as err:
                    if self._stop_requested:
                        return False  # shutting down anyway (e.g. Ctrl-C stopped Redis first)
                    self.log.warning("Redis is unavailable (%s); waiting for it to come back", err)
                    if not self._wait_for_redis():
                        self.log.info("Worker %s: stopping on request (Redis still unavailable)", self.name)
                        return False
        finally:
            self._reap_horse()

    def _wait_for_redis(self) -> bool:
        """True once Redis answers; False if asked to stop while waiting (noticed within ~1 s:
        the pings back off to 10 s apart, the stop flag is looked at every 0.1 s)."""
        redis_class, connection_class, kwargs = parse_connection(self.connection)
        kwargs.update(socket_timeout=1.0, socket_connect_timeout=1.0)  # a ping never blocks for long
        probe = redis_class(connection_pool=redis.ConnectionPool(connection_class=connection_class, **kwargs))
        delay = 0.5
        next_ping = time.monotonic() + delay
        try:
            while not self._stop_requested:
                if time.monotonic() >= next_ping:
                    try:
                        probe.ping()
                        return True
                    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                        delay = min(delay * 2, 10.0)
                        next_ping = time.monotonic() + delay
                time.sleep(0.1)
            return False
        finally:
            probe.close()

    @property
    def dequeue_timeout(self) -> int:
        return max(1, min(self.worker_ttl - 15, self.maintenance_interval))

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        if self._stop_requested:
            raise StopRequested()
        self._interruptible = True
        try:
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        finally:
            self._interruptible = False

    def reorder_queues(self, reference_queue):
        # Called as soon as a job has been dequeued: from here on a stop request must not drop
        # it; it runs, and is told to stop at its first step.
        self._interruptible = False
        super().reorder_queues(reference_queue)

    def run_maintenance_tasks(self):
        interruptible, self._interruptible = self._interruptible, False  # never abort the sweep halfway
        try:
            if not self._stop_requested:  # stopping: don't restart the scheduler or start a sweep
                super().run_maintenance_tasks()
                started = time.monotonic()
                try:
                    report = jobs.sweep()
                except Exception as err:  # a failed sweep must never stop the worker; the next one retries
                    self.log.exception("Herald sweep failed")
                    metrics.record_sweep_failure(self.connection, f"{type(err).__name__}: {err}", self.name)
                else:
                    if report is not None:  # None: another worker's sweep held the lock
                        metrics.record_sweep(self.connection, report, time.monotonic() - started, self.name)
        finally:
            self._interruptible = interruptible
        if self._stop_requested:  # asked while maintaining: stop before waiting for another job
            raise StopRequested()

    # -- running a job: ids in the logs, figures in the metrics ----------------------------------

    def execute_job(self, job, queue):
        """Bind the job's ids (job, chunk, campaign) for every log line about it, the work
        horse's included (it is forked in here and inherits them)."""
        try:
            ids = queue_state.job_ids(job, lookup=False)  # no query here: it costs every job, in the parent
            if "chunk_id" in ids and ids.get("campaign_id") is None:  # enqueued by an older release
                with jobs.get_app().app_context():
                    ids = queue_state.job_ids(job)
        except Exception as err:  # noqa: BLE001 (the ids are for the logs; the job runs regardless)
            self.log.warning("could not read the ids of job %s: %s", job.id, err)
            ids = {"job_id": job.id}
        token = logs.bind(**ids)
        try:
            return super().execute_job(job, queue)
        finally:
            logs.reset(token)

    def perform_job(self, job, queue, *args, **kwargs):
        """In the work horse: the job, then one line saying how it went and its metrics."""
        started, ok = time.monotonic(), False
        try:
            ok = super().perform_job(job, queue, *args, **kwargs)
            return ok
        finally:
            seconds = time.monotonic() - started
            metrics.record_job(self.connection, job, queue.name, ok, seconds)
            result = getattr(job, "_result", None) if ok else None
            extra = {"function": queue_state.job_function(job), "queue": queue.name, "outcome": "finished" if ok
                     else "failed", "duration_ms": round(seconds * 1000, 1)}
            if isinstance(result, dict):
                extra.update({k: v for k, v in result.items()
                              if isinstance(v, (int, float, str, bool)) and k not in _RECORD_ATTRIBUTES})
            self.log.info("job %s %s in %.0f ms", job.id, extra["outcome"], seconds * 1000, extra=extra)

    # -- stopping: the worker process ---------------------------------------------------------

    def request_stop(self, signum, frame):
        """Warm shutdown (first SIGTERM/SIGINT): always recorded, forwarded to the horse; the
        loop then ends after the horse, or right away when idle."""
        if os.getpid() != self.pid:
            # A fork still running the worker's handlers: only the scheduler can be here (horses
            # block these signals until their own handlers are set). Let it end.
            raise SystemExit(0)
        self.log.debug("Worker %s: got signal %s", self.name, signal.Signals(signum).name)
        self._stop_requested = True
        self._shutdown_requested_date = now()
        signal.signal(signal.SIGINT, self.request_force_stop)
        signal.signal(signal.SIGTERM, self.request_force_stop)
        self.handle_warm_shutdown_request()
        self._signal_scheduler()
        if self._interruptible:  # waiting for a job (or in RQ's retry sleeps while Redis is down)
            raise StopRequested()

    def request_force_stop(self, signum, frame):
        if os.getpid() != self.pid:
            raise SystemExit(0)  # see request_stop
        super().request_force_stop(signum, frame)

    def handle_warm_shutdown_request(self):
        if self.horse_pid:
            self.log.info("Worker %s [PID %d]: warm shut down requested; asking work horse %d to stop "
                          "at its next step", self.name, self.pid, self.horse_pid)
            self._signal_horse()
        else:
            self.log.info("Worker %s [PID %d]: warm shut down requested", self.name, self.pid)

    def _signal_horse(self) -> None:
        try:
            os.kill(self.horse_pid, signal.SIGTERM)
        except ProcessLookupError:
            pass  # it just finished

    def _signal_scheduler(self) -> None:
        process = self.scheduler._process if self.scheduler else None
        if process is not None and process.pid and process.is_alive():
            try:
                os.kill(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def stop_scheduler(self):
        """RQ's, but a scheduler that does not end promptly is killed rather than waited for."""
        process = self.scheduler._process if self.scheduler else None
        if process is None or not process.pid:
            return
        self._signal_scheduler()
        process.join(SCHEDULER_STOP_SECONDS)
        if process.is_alive():
            self.log.warning("Worker %s: scheduler %d did not stop; killing it", self.name, process.pid)
            process.kill()
            process.join(1.0)

    def teardown(self):
        try:
            super().teardown()
        except redis.exceptions.RedisError as err:
            if not self._stop_requested:
                raise  # work() waits for Redis and starts over
            # Leaving anyway: RQ's records of this worker expire on their own.
            self.log.warning("Worker %s: Redis unavailable while stopping (%s)", self.name, err)
            if self.pubsub_thread is not None:
                self.pubsub_thread.stop()

    def fork_work_horse(self, job, queue):
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            super().fork_work_horse(job, queue)  # the horse never returns from this
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        if self._stop_requested and self.horse_pid:
            self._signal_horse()  # asked to stop while forking: this horse missed the request

    def _reap_horse(self) -> None:
        """A horse RQ lost track of (its monitoring failed when Redis vanished) must not outlive
        the worker: give it a few seconds to reach a step boundary, then kill it."""
        pid = self._horse_pid
        if not pid:
            return
        deadline = time.monotonic() + HORSE_REAP_SECONDS
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == 0:  # still running (and so still ours to signal)
                self.log.info("Worker %s: waiting for work horse %d to stop", self.name, pid)
                self._signal_horse()
            while os.waitpid(pid, os.WNOHANG)[0] == 0:
                if time.monotonic() >= deadline:
                    self.log.warning("Worker %s: work horse %d did not stop; killing it", self.name, pid)
                    self.kill_horse()
                    os.waitpid(pid, 0)
                    break
                time.sleep(0.05)
        except ChildProcessError:
            pass  # already reaped
        self._horse_pid = 0

    # -- stopping: the work horse ---------------------------------------------------------

    def setup_work_horse_signals(self):
        """SIGINT is ignored (RQ's choice); SIGTERM asks the running job to stop at its next step
        (`dashboard.shutdown.requested()`) instead of killing the horse mid-step."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, shutdown.request)

    def main_work_horse(self, job, queue):
        # A fresh flag for this horse, then its own handlers, then the signals blocked around
        # fork() (pending ones are delivered now, to the new handlers). Not reset in
        # setup_work_horse_signals: RQ calls that again below, and must not lose a request.
        shutdown.reset()
        self.setup_work_horse_signals()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        # The horse is a fork: never reuse the parent's pooled DB sockets.
        from dashboard.extensions import db

        with jobs.get_app().app_context():
            db.engine.dispose(close=False)
        return super().main_work_horse(job, queue)
