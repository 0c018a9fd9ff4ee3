"""Time-boxed delivery with real worker processes: a hanging webhook cannot hold a worker
for longer than a slice, a slow rate limit is honoured across slices without a job timeout
or a lease lapse, SIGTERM stops a worker mid-send without duplicates, and every batch send
(in-app included) honours its channel's rate limit."""

from __future__ import annotations

import collections
import os
import signal
import time

import pytest
from sqlalchemy import select

from dashboard import create_app
from dashboard.extensions import db
from dashboard.models import Campaign, CampaignChunk, Notification
from dashboard.services import campaigns, channel_settings, lifecycle, notifications, recipients, recovery
from dashboard.services.actor import Actor
from scripts import redis_server
from tests.engine import drain, kill_9, signal_tree, start_worker, wait_for
from tests.sinks import HttpSink
from tests.test_api_campaigns import make_template
from tests.test_delivery_faults import assert_counters_match_rows, status_of

ACTOR = Actor.system("test")
SLICE = 2.0
ENV = {"HERALD_SLICE_SECONDS": str(SLICE), "HERALD_RETRY_BASE_SECONDS": "0.2", "HERALD_SWEEP_SECONDS": "1",
       "HERALD_WORKER_TTL": "20"}


@pytest.fixture
def procs(app, tmp_path, monkeypatch):
    monkeypatch.setenv("HERALD_WORKER_LOG", str(tmp_path / "worker.log"))
    app.config["HERALD_STALL_SECONDS"] = 3
    started = []

    def start(**extra):
        proc = start_worker(app, **{**ENV, **extra})
        started.append(proc)
        return proc

    yield start
    app.config["HERALD_STALL_SECONDS"] = 30
    for proc in started:
        if proc.poll() is None:
            kill_9(proc)


@pytest.fixture
def sink(app):
    server = HttpSink()
    yield server
    server.close()


def webhook_campaign(sink: HttpSink, n: int, rate: float, timeout: float = 10) -> Campaign:
    channel_settings.update("webhook", {"rateLimit": rate, "settings": {"url": sink.url, "secret": "s",
                                                                        "timeoutSeconds": timeout}}, ACTOR)
    make_template()
    c = campaigns.create({"name": "Hooks", "templateId": "promo", "channel": "webhook",
                          "variables": {"offer": "10% off"}}, ACTOR)
    recipients.add_manual(c.id, [f"u{i}" for i in range(n)], None, ACTOR)
    return c


def one_call_seconds(user: str) -> float:
    """From the one-call API's accept to the feed row's existence."""
    started = time.monotonic()
    notifications.send({"templateId": "promo", "targets": [user], "variables": {"offer": "now"}}, ACTOR)

    def arrived():
        db.session.expire_all()
        return db.session.scalar(select(Notification.id).where(Notification.user_id == user))

    wait_for(arrived, 30, f"the one-call notification to {user}")
    return time.monotonic() - started


def test_a_hanging_webhook_delays_a_one_call_by_at_most_one_slice(procs, sink):
    sink.default, sink.hang_seconds = "hang", 30.0  # every webhook call hangs past its timeout
    c = webhook_campaign(sink, 200, rate=5000, timeout=10)
    procs()  # one worker
    idle = one_call_seconds("idle-user")
    lifecycle.send(c.id, None, ACTOR)
    wait_for(lambda: len(sink.requests) >= 10, 20, "the webhook send to be stuck on the hanging endpoint")
    time.sleep(0.5)
    busy = one_call_seconds("busy-user")
    print(f"\n  one-call delivered in {idle:.2f} s idle, {busy:.2f} s behind a hanging webhook (slice {SLICE:g} s)")
    assert busy - idle <= SLICE + 1.0, f"the one-call waited {busy - idle:.2f} s behind the webhook chunk"
    lifecycle.cancel(c.id, ACTOR)


def test_rate_of_2_per_second_sends_each_recipient_once_across_slices_and_workers(procs, sink):
    n = 50
    c = webhook_campaign(sink, n, rate=2)
    procs(HERALD_BATCH_CHUNK="10")
    procs(HERALD_BATCH_CHUNK="10")  # two workers share the bucket and must not double a chunk
    from flask import current_app

    current_app.config["HERALD_BATCH_CHUNK"] = 10
    try:
        lifecycle.send(c.id, None, ACTOR)
        started = time.monotonic()
        wait_for(lambda: status_of(c.id) == "sent", 60, "the slow send to complete")
    finally:
        current_app.config["HERALD_BATCH_CHUNK"] = 1000
    took = time.monotonic() - started
    per_user = collections.Counter(r["json"]["userId"] for r in sink.requests)
    assert per_user == collections.Counter({f"u{i}": 1 for i in range(n)})
    assert took >= (n - 1) / 2 * 0.9, f"{n} messages at 2/s took only {took:.1f} s"
    assert_counters_match_rows(c.id)
    chunks = db.session.scalars(select(CampaignChunk).where(CampaignChunk.campaign_id == c.id)).all()
    assert all(ch.done and ch.attempts == 0 for ch in chunks), \
        f"a job failed or was lost: {[(ch.id, ch.done, ch.attempts, ch.run, ch.last_error) for ch in chunks]}"
    assert max(ch.run for ch in chunks) > 1, "the send was sliced"


@pytest.mark.parametrize("target", ["worker", "every process"])
def test_sigterm_mid_webhook_send_exits_within_10_s_and_nothing_is_sent_twice(procs, sink, target):
    n = 1000
    c = webhook_campaign(sink, n, rate=100)
    worker = procs()
    lifecycle.send(c.id, None, ACTOR)
    wait_for(lambda: len(sink.requests) >= 100, 30, "100 webhooks sent")
    asked = time.monotonic()
    if target == "worker":
        os.kill(worker.pid, signal.SIGTERM)
    else:  # as a platform does on deploy: the worker, its scheduler and its work horse at once
        signal_tree(worker, signal.SIGTERM)
    worker.wait(timeout=15)
    took = time.monotonic() - asked
    print(f"\n  SIGTERM to the {target}: exited in {took:.2f} s")
    assert took <= 10, f"the worker took {took:.1f} s to stop"
    assert status_of(c.id) == "sending"
    assert_counters_match_rows(c.id)
    procs()
    wait_for(lambda: status_of(c.id) == "sent", 60, "a new worker to complete the send")
    per_user = collections.Counter(r["json"]["userId"] for r in sink.requests)
    assert set(per_user) == {f"u{i}" for i in range(n)}
    assert max(per_user.values()) == 1, "a recipient was delivered twice"
    assert_counters_match_rows(c.id)


def test_in_app_batch_sends_honour_the_channel_rate_limit(app):
    channel_settings.update("in_app", {"rateLimit": 1000}, ACTOR)
    make_template()
    c = campaigns.create({"name": "Feed", "templateId": "promo", "variables": {"offer": "x"}}, ACTOR)
    recipients.add_manual(c.id, [f"u{i}" for i in range(3000)], None, ACTOR)
    started = time.monotonic()
    lifecycle.send(c.id, None, ACTOR)
    deadline = time.monotonic() + 30
    while status_of(c.id) != "sent" and time.monotonic() < deadline:
        drain()
        time.sleep(0.05)
    took = time.monotonic() - started
    assert status_of(c.id) == "sent"
    assert took >= 2.5, f"3,000 in-app messages at 1,000/s took {took:.2f} s"
    assert_counters_match_rows(c.id)


def test_send_answers_with_the_change_when_redis_is_down(app, client, api_key):
    """The campaign moved to sending: say so (202), and the sweep starts it once Redis is back."""
    make_template()
    c = campaigns.create({"name": "R", "templateId": "promo", "variables": {"offer": "x"}}, ACTOR)
    recipients.add_manual(c.id, ["a", "b"], None, ACTOR)
    key = api_key("marketer")
    dead = create_app({"HERALD_ENV": "testing", "TESTING": True, "SECRET_KEY": "test-secret-key",
                       "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
                       "REDIS_URL": f"redis://127.0.0.1:{redis_server.free_port()}/0"})
    with dead.app_context():
        response = dead.test_client().post(f"/api/v1/campaigns/{c.id}/send", json={},
                                           headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 202, response.get_data(as_text=True)
    assert response.get_json()["status"] == "sending"
    app.config["HERALD_STALL_SECONDS"] = 0
    try:
        assert recovery.sweep()["planned"] == 1
    finally:
        app.config["HERALD_STALL_SECONDS"] = 30
    drain()
    assert status_of(c.id) == "sent"
