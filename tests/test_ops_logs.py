"""Logs: JSON lines from a real worker carry the campaign, chunk and job ids of each chunk;
gunicorn's lines and the app's are JSON too, with the request id taken from X-Request-ID (or
made) and returned; plain lines in development; Sentry only with SENTRY_DSN."""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from dashboard import logs
from dashboard.config import from_environment
from dashboard.extensions import db
from dashboard.models import Campaign, CampaignChunk
from dashboard.models.campaign import job_id_for
from dashboard.services import lifecycle
from tests.engine import start_worker, stop_worker, wait_for
from tests.servers import gunicorn
from tests.test_delivery_faults import ACTOR, assert_counters_match_rows, make_send

ROOT = Path(__file__).resolve().parent.parent


def json_lines(path: Path) -> list[dict]:
    """Every line of the file, each of which must be one JSON object."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    assert lines, "nothing was logged"
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    return parsed


def test_worker_json_lines_carry_the_campaign_of_each_chunk(app, tmp_path, monkeypatch):
    log_file = tmp_path / "worker.log"
    monkeypatch.setenv("HERALD_WORKER_LOG", str(log_file))
    c = make_send("in_app", 2500)
    worker = start_worker(app, HERALD_LOG_FORMAT="json", HERALD_SWEEP_SECONDS="1")
    try:
        lifecycle.send(c.id, None, ACTOR)
        wait_for(lambda: db.session.get(Campaign, c.id).status == "sent" or db.session.expire_all(), 60,
                 "the send to finish")
    finally:
        stop_worker(worker)
    c = assert_counters_match_rows(c.id)
    chunks = {ch.id: ch for ch in db.session.query(CampaignChunk).filter_by(campaign_id=c.id)}
    assert len(chunks) == 3

    records = json_lines(log_file)  # RQ's own lines included: nothing plain slipped through
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    done = [r for r in records if r.get("function") == "deliver_chunk" and r.get("outcome") == "finished"]
    assert {r["chunk_id"] for r in done} == set(chunks)
    for r in done:
        assert r["campaign_id"] == c.id
        assert r["job_id"] in {job_id_for(r["chunk_id"], run) for run in range(20)}
        assert r["duration_ms"] >= 0 and r["queue"] == "batch"
    assert sum(r["delivered"] for r in done) == c.sent  # one line per slice, adding up to the campaign
    # RQ's own lines about a chunk's job carry the ids too (bound before the work horse forks).
    rq_lines = [r for r in records if r["logger"] == "rq.worker" and r.get("chunk_id") in chunks]
    assert rq_lines and all(r["campaign_id"] == c.id for r in rq_lines)
    start = [r for r in records if r.get("function") == "start_campaign"]
    assert start and start[0]["campaign_id"] == c.id and "chunk_id" not in start[0]


def test_request_ids_in_gunicorn_json_lines_and_response_headers(app, tmp_path, monkeypatch):
    log_file = tmp_path / "web.log"
    monkeypatch.setenv("HERALD_WEB_LOG", str(log_file))
    with gunicorn(app, HERALD_LOG_FORMAT="json", WEB_CONCURRENCY="1") as base:
        given = httpx.get(f"{base}/login", headers={"X-Request-ID": "trace-abc-123"})
        assert given.headers["X-Request-ID"] == "trace-abc-123"
        made = httpx.get(f"{base}/campaigns/42")  # not signed in: redirected, still with an id
        assert made.status_code == 302 and re.fullmatch(r"[0-9a-f]{32}", made.headers["X-Request-ID"])
        odd = httpx.get(f"{base}/healthz", headers={"X-Request-ID": "two words\tand a tab"})
        assert re.fullmatch(r"[0-9a-f]{32}", odd.headers["X-Request-ID"])
    records = json_lines(log_file)
    assert any(r["logger"].startswith("gunicorn") for r in records)  # gunicorn's own lines, as JSON
    requests = {r["request_id"]: r for r in records if r["logger"] == "herald.request"}
    line = requests["trace-abc-123"]
    assert (line["method"], line["path"], line["status"], line["endpoint"]) == ("GET", "/login", 200, "auth.login")
    redirected = requests[made.headers["X-Request-ID"]]
    assert redirected["campaign_id"] == 42 and redirected["status"] == 302
    assert odd.headers["X-Request-ID"] in requests
    assert not any(r["logger"] == "gunicorn.access" for r in records)  # one line per request, not two


def test_plain_lines_in_development_with_the_ids():
    config = logs.dict_config({"HERALD_ENV": "development"})
    assert set(config["formatters"]) == {"plain"}
    assert logs.dict_config({"HERALD_ENV": "production"})["formatters"].keys() == {"json"}
    formatter = logs.PlainFormatter("%(levelname)s %(name)s: %(message)s")
    record = logging.makeLogRecord({"msg": "slice done", "levelname": "INFO", "name": "rq.worker"})
    token = logs.bind(campaign_id=3, chunk_id=7, job_id="herald-chunk-7-0")
    try:
        logs.ContextFilter().filter(record)
    finally:
        logs.reset(token)
    assert formatter.format(record) == "INFO rq.worker: slice done [campaign_id=3 chunk_id=7 job_id=herald-chunk-7-0]"
    assert logs.current() == {}
    assert logs.dict_config({"HERALD_ENV": "production", "HERALD_LOG_FORMAT": "plain"})["formatters"].keys() == {
        "plain"}
    with pytest.raises(RuntimeError, match="HERALD_LOG_FORMAT must be json or plain"):
        from_environment("/nowhere", {"SECRET_KEY": "x", "HERALD_LOG_FORMAT": "xml"})  # the app refuses to start


class _Collector(BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        type(self).bodies.append(body)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_errors_go_to_sentry_only_with_a_dsn(app):
    """A real sentry-sdk sending to a local receiver: an error logged by the app arrives, with no
    request data; without SENTRY_DSN nothing is initialised."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    script = ("import logging, sentry_sdk\n"
              "from dashboard import create_app\n"
              "app = create_app()\n"
              "print('initialised', sentry_sdk.is_initialized())\n"
              "logging.getLogger('dashboard.jobs').error('the sweep could not reach the database')\n"
              "sentry_sdk.flush(5)\n")
    env = dict(os.environ, HERALD_ENV="testing", SECRET_KEY="x", DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
               REDIS_URL=app.config["REDIS_URL"])
    try:
        with_dsn = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
                                  env=dict(env, SENTRY_DSN=f"http://publickey@127.0.0.1:{server.server_port}/42"))
        without = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                                 timeout=60, env={k: v for k, v in env.items() if k != "SENTRY_DSN"})
    finally:
        server.shutdown()
    assert "initialised True" in with_dsn.stdout, with_dsn.stderr
    assert "initialised False" in without.stdout, without.stderr
    events = b"\n".join(_Collector.bodies)
    assert b"the sweep could not reach the database" in events
    assert b'"environment":"testing"' in events.replace(b" ", b"")
