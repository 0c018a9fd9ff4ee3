"""Fault injection with real processes: the Procfile's worker is killed with SIGKILL mid-send."""

import time

from sqlalchemy import func, select

from dashboard.extensions import db
from dashboard.models import Campaign, CampaignChunk, Notification, Recipient
from dashboard.services import lifecycle
from tests.engine import kill_9, start_worker, wait_for
from tests.test_sending import ACTOR, make_campaign

N = 20_000


def _progress(campaign_id: int) -> tuple[str, int]:
    db.session.expire_all()
    c = db.session.get(Campaign, campaign_id)
    return c.status, c.sent


def test_kill_9_at_30_and_70_percent_then_restart_delivers_each_once(app, tmp_path, monkeypatch):
    log = tmp_path / "worker.log"
    monkeypatch.setenv("HERALD_WORKER_LOG", str(log))
    campaign = make_campaign(N)
    env = {"HERALD_BATCH_CHUNK": "100", "HERALD_SWEEP_SECONDS": "1", "HERALD_WORKER_TTL": "20"}
    app.config["HERALD_STALL_SECONDS"] = 3
    worker = start_worker(app, **env)
    try:
        app.config["HERALD_BATCH_CHUNK"] = 100
        lifecycle.send(campaign.id, None, ACTOR)
        wait_for(lambda: _progress(campaign.id)[1] >= 0.3 * N, 120, "30% sent")
        kill_9(worker)
        status, sent = _progress(campaign.id)
        assert status == "sending" and sent < N, "the send finished before the kill; nothing was tested"

        worker = start_worker(app, **env)
        wait_for(lambda: _progress(campaign.id)[1] >= 0.7 * N, 120, "70% sent")
        kill_9(worker)
        assert _progress(campaign.id)[0] == "sending"

        worker = start_worker(app, **env)
        try:
            wait_for(lambda: _progress(campaign.id)[0] == "sent", 180, "campaign sent after restarts")
        except AssertionError:
            chunks = db.session.execute(select(CampaignChunk.id, CampaignChunk.done, CampaignChunk.attempts)
                                        .where(CampaignChunk.done.is_(False))).all()
            raise AssertionError(f"not sent; open chunks {chunks[:10]}; progress {_progress(campaign.id)}; "
                                 f"worker log tail:\n{log.read_text()[-4000:]}") from None
    finally:
        if worker.poll() is None:
            kill_9(worker)
        app.config["HERALD_STALL_SECONDS"] = 30
        app.config["HERALD_BATCH_CHUNK"] = 1000  # the suite's setting (conftest)
    db.session.expire_all()
    c = db.session.get(Campaign, campaign.id)
    assert (c.sent, c.pending, c.failed, c.skipped) == (N, 0, 0, 0)
    assert db.session.scalar(select(func.count()).select_from(Notification)) == N
    assert db.session.scalar(select(func.count(func.distinct(Notification.recipient_id)))) == N
    assert db.session.scalar(select(func.count()).select_from(Recipient).where(Recipient.status != "sent")) == 0


def _exactly_once(campaign_id: int, n: int) -> None:
    db.session.expire_all()
    c = db.session.get(Campaign, campaign_id)
    assert (c.status, c.sent, c.pending, c.failed, c.skipped) == ("sent", n, 0, 0, 0)
    assert db.session.scalar(select(func.count()).select_from(Notification).where(
        Notification.campaign_id == campaign_id)) == n
    assert db.session.scalar(select(func.count()).select_from(Recipient).where(
        Recipient.campaign_id == campaign_id, Recipient.status != "sent")) == 0


def test_redis_restarted_mid_send_completes_without_duplicates(app, tmp_path, monkeypatch):
    from dashboard import create_app
    from scripts import redis_server

    monkeypatch.setenv("HERALD_WORKER_LOG", str(tmp_path / "worker.log"))
    port = redis_server.free_port()
    redis_proc, url = redis_server.start(tmp_path / "redis", port)
    private = create_app({"HERALD_ENV": "testing", "TESTING": True, "SECRET_KEY": "test-secret-key",
                          "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], "REDIS_URL": url,
                          "HERALD_STALL_SECONDS": 3, "HERALD_BATCH_CHUNK": 100})
    n = 10_000
    worker = None
    try:
        with private.app_context():
            campaign = make_campaign(n)
            worker = start_worker(private, HERALD_BATCH_CHUNK="100", HERALD_SWEEP_SECONDS="1", HERALD_WORKER_TTL="20")
            lifecycle.send(campaign.id, None, ACTOR)
            wait_for(lambda: _progress(campaign.id)[1] >= 0.3 * n, 120, "30% sent")
            redis_proc.kill()
            redis_proc.wait(timeout=10)
            assert _progress(campaign.id)[0] == "sending"
            time.sleep(1.0)
            redis_proc, _ = redis_server.start(tmp_path / "redis", port)  # back, and empty
            wait_for(lambda: _progress(campaign.id)[0] == "sent", 180, "sent after Redis came back")
            _exactly_once(campaign.id, n)
    finally:
        if worker is not None and worker.poll() is None:
            kill_9(worker)
        redis_proc.kill()


def test_database_connections_dropped_mid_chunk_are_retried(app, monkeypatch, tmp_path):
    import pytest

    if db.engine.dialect.name != "postgresql":
        pytest.skip("dropping server connections needs PostgreSQL (SQLite has no connections to drop)")
    from sqlalchemy import text

    monkeypatch.setenv("HERALD_WORKER_LOG", str(tmp_path / "worker.log"))
    n = 10_000
    campaign = make_campaign(n)
    app.config["HERALD_STALL_SECONDS"] = 3
    worker = start_worker(app, HERALD_BATCH_CHUNK="100", HERALD_SWEEP_SECONDS="1", HERALD_WORKER_TTL="20")
    try:
        app.config["HERALD_BATCH_CHUNK"] = 100
        lifecycle.send(campaign.id, None, ACTOR)
        wait_for(lambda: _progress(campaign.id)[1] >= 0.3 * n, 120, "30% sent")
        killed = 0
        for _ in range(5):  # cut every other connection to this database, a few times
            killed += db.session.execute(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar()
            db.session.commit()
            time.sleep(0.2)
        assert killed >= 1
        wait_for(lambda: _progress(campaign.id)[0] == "sent", 180, "sent after connections were dropped")
    finally:
        if worker.poll() is None:
            kill_9(worker)
        app.config["HERALD_STALL_SECONDS"] = 30
        app.config["HERALD_BATCH_CHUNK"] = 1000  # the suite's setting (conftest)
    _exactly_once(campaign.id, n)


def test_scheduled_campaign_fires_once_after_worker_and_scheduler_restart(app, monkeypatch, tmp_path):
    from datetime import timedelta

    from dashboard.models import AuditEvent, utcnow

    monkeypatch.setenv("HERALD_WORKER_LOG", str(tmp_path / "worker.log"))
    n = 500
    campaign = make_campaign(n)
    worker = start_worker(app, HERALD_SWEEP_SECONDS="1")
    try:
        time.sleep(1.5)
        lifecycle.send(campaign.id, (utcnow() + timedelta(seconds=4)).isoformat(), ACTOR)
        kill_9(worker)  # worker and its scheduler die while the campaign is scheduled
        time.sleep(5)
        assert _progress(campaign.id)[0] == "scheduled"  # nobody was there to fire it
        worker = start_worker(app, HERALD_SWEEP_SECONDS="1")
        second = start_worker(app, HERALD_SWEEP_SECONDS="1")  # two schedulers/sweeps racing to fire it
        wait_for(lambda: _progress(campaign.id)[0] == "sent", 60, "the missed schedule to fire")
        kill_9(second)
    finally:
        if worker.poll() is None:
            kill_9(worker)
    fired = db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.target_id == str(campaign.id), AuditEvent.action == "campaign.fire"))
    assert fired == 1
    _exactly_once(campaign.id, n)
