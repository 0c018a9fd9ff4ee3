"""GET /metrics: a real send through a real worker, scraped from gunicorn with the repository's
gunicorn.conf.py (2 processes, prometheus_client's multi-process mode); values equal the
campaign's own counters; HTTP counts add up across both web processes; who may read it."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dashboard.extensions import db
from dashboard.models import Campaign, CampaignChunk
from dashboard.services import lifecycle
from tests.conftest import csrf_from, login
from tests.engine import drain, start_worker, stop_worker, wait_for
from tests.servers import gunicorn
from tests.test_delivery_faults import ACTOR, assert_counters_match_rows, make_send, poison

TOKEN = "metrics-token-for-tests"
WORKER_ENV = {"HERALD_SWEEP_SECONDS": "1", "HERALD_SLICE_SECONDS": "2"}


def samples(text: str) -> dict[tuple, float]:
    """{(sample name, (label, value) pairs sorted): value} from the exposition text."""
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def value(found: dict, name: str, **labels) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


def scrape(base: str, token: str = TOKEN) -> dict:
    response = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


def _pids(metrics_dir: Path) -> set[str]:
    """The processes that wrote metrics files (counter_<pid>.db, histogram_<pid>.db)."""
    return {p.stem.rsplit("_", 1)[1] for p in metrics_dir.glob("*.db")}


@pytest.fixture
def worker(app):
    proc = start_worker(app, **WORKER_ENV)
    yield proc
    stop_worker(proc)


def test_metrics_after_a_send_match_the_campaign_through_gunicorn_and_a_real_worker(app, worker, tmp_path):
    c = make_send("in_app", 2500)  # 3 chunks of 1,000
    poison(c.id, "u7", variables={"offer": "has a \x00 NUL"})  # one recipient fails, alone
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"left over by a previous run")
    with gunicorn(app, HERALD_METRICS_TOKEN=TOKEN, WEB_CONCURRENCY="2", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)) \
            as base:
        assert not (metrics_dir / "counter_999999.db").exists()  # emptied at start
        lifecycle.send(c.id, None, ACTOR)
        wait_for(lambda: db.session.get(Campaign, c.id).status == "sent" or db.session.expire_all(), 60,
                 "the send to finish")
        c = assert_counters_match_rows(c.id)
        assert (c.sent, c.failed, c.skipped) == (2499, 1, 0)
        chunks = db.session.query(CampaignChunk).filter_by(campaign_id=c.id).count()

        found = wait_for(lambda: (f := scrape(base)) and (value(f, "herald_sweep_runs_total") or 0) >= 1 and f, 20,
                         "a sweep to be recorded")
        labels = {"channel": "in_app", "kind": "campaign"}
        assert value(found, "herald_deliveries_total", **labels, outcome="sent") == c.sent
        assert value(found, "herald_deliveries_total", **labels, outcome="failed") == c.failed
        assert value(found, "herald_deliveries_total", **labels, outcome="skipped") == c.skipped
        assert value(found, "herald_send_duration_seconds_count", **labels) == 1
        assert value(found, "herald_recipients_pending", channel="in_app") in (None, 0)
        assert value(found, "herald_campaigns", status="sending") == 0
        assert value(found, "herald_chunk_retries_total", channel="in_app") == 0
        ran = value(found, "herald_jobs_total", function="deliver_chunk", queue="batch", outcome="finished")
        assert ran is not None and ran >= chunks
        assert value(found, "herald_jobs_total", function="start_campaign", queue="batch", outcome="finished") == 1
        assert value(found, "herald_job_duration_seconds_count", function="deliver_chunk") == ran
        assert value(found, "herald_job_wait_seconds_count", queue="batch") >= ran
        for state in ("queued", "started", "scheduled", "failed"):
            assert value(found, "herald_queue_jobs", queue="batch", state=state) == 0
        assert value(found, "herald_queue_oldest_job_age_seconds", queue="realtime") == 0
        assert sum(v for (name, _), v in found.items() if name == "herald_workers") == 1
        assert value(found, "herald_sweep_last_run_timestamp_seconds") > 0
        assert value(found, "herald_sweep_actions_total", action="requeued") == 0
        assert value(found, "herald_metrics_source_up", source="database") == 1
        assert value(found, "herald_metrics_source_up", source="redis") == 1

        # HTTP figures come from both web processes (one metrics file set each), added up exactly.
        before = scrape(base)
        gets = 0
        while gets < 10 or (len(_pids(metrics_dir)) < 2 and gets < 300):
            assert httpx.get(f"{base}/login", timeout=10).status_code == 200  # a new connection each time
            gets += 1
        assert len(_pids(metrics_dir)) == 2  # both gunicorn workers served (and recorded) some
        with httpx.Client(base_url=base, timeout=10) as browser:
            token = csrf_from(browser.get("/login").text)
            for _ in range(2):
                refused = browser.post("/login", data={"csrf_token": token, "email": "nobody@example.com",
                                                        "password": "wrong password"})
                assert refused.status_code == 401
        after = scrape(base)
        get_login = {"endpoint": "auth.login", "method": "GET", "status": "200"}
        assert (value(after, "herald_http_requests_total", **get_login)
                - (value(before, "herald_http_requests_total", **get_login) or 0)) == gets + 1
        assert value(after, "herald_login_failures_total", reason="bad_credentials") == 2
        assert value(after, "herald_http_request_duration_seconds_count", endpoint="auth.login", method="POST") == 2

        assert httpx.get(f"{base}/metrics", timeout=10).status_code == 401
        assert httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer nope"}, timeout=10).status_code == 401


def test_who_may_read_metrics(app, client, logged_in, make_account):
    """Signed-in admins can look; other roles get 403; a scraper needs the token, and an empty
    token setting never matches (not even `Bearer ` with nothing after it)."""
    c = make_send("in_app", 5)
    lifecycle.send(c.id, None, ACTOR)
    drain()
    anonymous = client.get("/metrics")
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401
    app.config["HERALD_METRICS_TOKEN"] = TOKEN
    try:
        by_token = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert by_token.status_code == 200
        assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}x"}).status_code == 401
    finally:
        app.config["HERALD_METRICS_TOKEN"] = ""
    found = samples(by_token.get_data(as_text=True))
    assert value(found, "herald_deliveries_total", channel="in_app", kind="campaign", outcome="sent") == 5
    assert os.environ.get("PROMETHEUS_MULTIPROC_DIR") is None  # this process: the in-process registry
    assert any(name == "python_info" for name, _ in found)  # ...with its default collectors

    logged_in("marketer")
    assert client.get("/metrics").status_code == 403
    admin = app.test_client()
    assert login(admin, make_account("admin").email).status_code == 302
    page = admin.get("/metrics")
    assert page.status_code == 200 and b"herald_deliveries_total" in page.data


def test_a_source_that_is_down_is_reported_not_fatal(app, client, logged_in):
    logged_in("admin")
    real = app.extensions["herald_redis"]
    import redis

    app.extensions["herald_redis"] = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        page = client.get("/metrics")
    finally:
        app.extensions["herald_redis"] = real
    assert page.status_code == 200
    found = samples(page.get_data(as_text=True))
    assert value(found, "herald_metrics_source_up", source="redis") == 0
    assert value(found, "herald_metrics_source_up", source="database") == 1


def test_the_metric_names_are_documented():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    from dashboard import metrics

    names = ["herald_deliveries_total", "herald_recipients_pending", "herald_campaigns",
             "herald_send_duration_seconds", "herald_chunk_retries_total", "herald_queue_jobs",
             "herald_queue_oldest_job_age_seconds", "herald_workers", "herald_sweep_last_run_timestamp_seconds",
             "herald_http_request_duration_seconds", "herald_http_requests_total", "herald_login_failures_total",
             "herald_metrics_source_up", *metrics.HELP]
    missing = [n for n in names if f"`{n}`" not in readme]
    assert not missing, missing
