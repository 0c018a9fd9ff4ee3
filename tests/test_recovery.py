"""Fault injection with real processes: the Procfile's worker is killed with SIGKILL mid-send."""

import os
import signal
import time

from sqlalchemy import func, select

from dashboard.extensions import db
from dashboard.models import Campaign, CampaignChunk, Notification, Recipient
from dashboard.services import lifecycle
from tests.engine import start_worker
from tests.test_sending import ACTOR, make_campaign

N = 20_000


def _progress(campaign_id: int) -> tuple[str, int]:
    db.session.expire_all()
    c = db.session.get(Campaign, campaign_id)
    return c.status, c.sent


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _kill(proc) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


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
        _wait(lambda: _progress(campaign.id)[1] >= 0.3 * N, 120, "30% sent")
        _kill(worker)
        status, sent = _progress(campaign.id)
        assert status == "sending" and sent < N, "the send finished before the kill; nothing was tested"

        worker = start_worker(app, **env)
        _wait(lambda: _progress(campaign.id)[1] >= 0.7 * N, 120, "70% sent")
        _kill(worker)
        assert _progress(campaign.id)[0] == "sending"

        worker = start_worker(app, **env)
        try:
            _wait(lambda: _progress(campaign.id)[0] == "sent", 180, "campaign sent after restarts")
        except AssertionError:
            chunks = db.session.execute(select(CampaignChunk.id, CampaignChunk.done, CampaignChunk.attempts)
                                        .where(CampaignChunk.done.is_(False))).all()
            raise AssertionError(f"not sent; open chunks {chunks[:10]}; progress {_progress(campaign.id)}; "
                                 f"worker log tail:\n{log.read_text()[-4000:]}") from None
    finally:
        if worker.poll() is None:
            _kill(worker)
        app.config["HERALD_STALL_SECONDS"] = 30
        app.config["HERALD_BATCH_CHUNK"] = 1000
    db.session.expire_all()
    c = db.session.get(Campaign, campaign.id)
    assert (c.sent, c.pending, c.failed, c.skipped) == (N, 0, 0, 0)
    assert db.session.scalar(select(func.count()).select_from(Notification)) == N
    assert db.session.scalar(select(func.count(func.distinct(Notification.recipient_id)))) == N
    assert db.session.scalar(select(func.count()).select_from(Recipient).where(Recipient.status != "sent")) == 0
