"""Gunicorn settings for Herald's web process: what the Procfile, the container and `make bench`
run (gunicorn also reads this file by itself when started from the repository's root).

Worker class: gevent (WEB_CONCURRENCY processes, default 2, each serving up to
HERALD_WEB_CONNECTIONS connections at once, default 2000). The web process serves both the
dashboard (short HTMX polls, uploads) and the end-user inbox's Server-Sent Event streams, which
stay open for as long as a user has the page open: one thread per stream (gthread) would take
one thread per connected end user, while a greenlet costs a few kB. gunicorn monkey-patches the
standard library in each worker; redis-py is pure Python over patched sockets, and psycopg 3
(>= 3.1.14) waits for libpq's non-blocking I/O with gevent's own primitives once patched, so
a query waits without blocking the worker's other requests. A stream holds no database
connection while it waits (it borrows one per wake-up). What gevent cannot make cooperative is
CPU work: a 100,000-row CSV being parsed holds its worker for that time, which is why there are
two workers (the other keeps answering). HERALD_WEB_WORKER_CLASS=gthread (HERALD_WEB_THREADS
threads each) goes back to threads, where each open stream occupies a thread.

Proxies: Herald's own ProxyFix (HERALD_TRUSTED_PROXIES hops) reads X-Forwarded-For/-Proto.
Gunicorn is made to agree: with no trusted proxy it believes no forwarded header from anyone,
with one or more it lets the router (whose address a platform does not publish) set the scheme.

Metrics: prometheus_client's multi-process mode needs a directory shared by the web workers,
named before any of them imports it. One is made here unless PROMETHEUS_MULTIPROC_DIR is set;
either way its files are removed at start (a previous run's counts would add to this one's),
and a worker's live gauges when it exits."""

import glob
import logging
import os
import shutil
import tempfile

_made_dir = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _made_dir = tempfile.mkdtemp(prefix="herald-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _made_dir
_metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]

from dashboard import logs  # noqa: E402 (after the metrics directory is named)

# Python warnings become log lines (JSON in production) rather than raw stderr text: each gevent
# worker warns at boot that it patches ssl after gunicorn's master imported it (gunicorn's own import;
# no SSL object is made before the patch) and names redis.asyncio, which Herald does not use.
logging.captureWarnings(True)

wsgi_app = "wsgi:app"
# bind: gunicorn's default, 0.0.0.0:$PORT when the platform sets PORT, else 127.0.0.1:8000.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = os.environ.get("HERALD_WEB_WORKER_CLASS", "gevent")
worker_connections = int(os.environ.get("HERALD_WEB_CONNECTIONS", "2000"))  # gevent: open connections per worker
threads = int(os.environ.get("HERALD_WEB_THREADS", "8"))  # gthread only
# A worker whose main loop is silent this long is restarted (both classes answer while requests run).
timeout = 30
# On SIGTERM, requests in flight get this long; below the 30 s platforms allow before SIGKILL.
graceful_timeout = 25
keepalive = 5
if os.path.isdir("/dev/shm"):  # the heartbeat file off the (possibly slow, overlay) disk in containers
    worker_tmp_dir = "/dev/shm"

_trusted = int(os.environ.get("HERALD_TRUSTED_PROXIES", "0") or 0)
forwarded_allow_ips = "*" if _trusted > 0 else ""
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}  # only the header ProxyFix reads too

# JSON lines in production (request ids, see dashboard/logs.py); gunicorn's own lines included.
logconfig_dict = logs.dict_config()
control_socket_disable = True  # no runtime control by gunicornc (nor a shared socket path per user)


def on_starting(server):
    for path in glob.glob(os.path.join(_metrics_dir, "*.db")):
        os.remove(path)


def post_worker_init(worker):
    """Inbox streams stay open until the client leaves: once the worker is told to stop (SIGTERM),
    end them (clients reconnect to a live worker) instead of holding the stop for graceful_timeout."""
    import threading  # patched by now under gevent: a greenlet
    import time

    from dashboard.services import inbox_stream

    def watch():
        while worker.alive:
            time.sleep(0.5)
        inbox_stream.close_all()

    threading.Thread(target=watch, name="herald-stop-streams", daemon=True).start()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, _metrics_dir)


def on_exit(server):
    if _made_dir:
        shutil.rmtree(_made_dir, ignore_errors=True)
