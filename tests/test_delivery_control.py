"""Delivery control in process (issue 14): pause/resume, canary wave and hold, automatic halt,
and the engine's edges around a pause (a run's lease, a failing job, a job that waited for its
time, the spread bucket). Real Redis and database; the channel is called in this process."""

from __future__ import annotations

import collections
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from dashboard.extensions import db
from dashboard.models import Campaign, CampaignChunk, Recipient, utcnow
from dashboard.ratelimit import TokenBucket
from dashboard.services import channel_settings, control, lifecycle
from dashboard.services.actor import Actor
from dashboard.services.delivery import chunks, guard, plan
from dashboard.services.delivery.slices import SHORT_WAIT, Slice
from tests.engine import drain
from tests.sinks import HttpSink
from tests.test_delivery_faults import assert_counters_match_rows
from tests.test_delivery_slices import webhook_campaign
from tests.test_sending import make_campaign

ACTOR = Actor("alice@example.com")


def test_a_paused_send_delivers_nothing_and_resume_finishes_each_recipient_once(app):
    c = make_campaign(3000)
    lifecycle.send(c.id, None, ACTOR)
    control.pause(c.id, ACTOR)
    drain()
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.sent, c.paused_reason) == ("paused", 0, "paused by alice@example.com")
    control.resume(c.id, ACTOR)
    drain()
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.sent, c.pending) == ("sent", 3000, 0)


def test_a_canary_holds_after_its_wave_and_continue_sends_the_rest_once(app):
    c = make_campaign(1000)
    lifecycle.send(c.id, None, ACTOR, options=control.parse_options({"canary": {"percent": 5}}))
    drain()
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.paused_reason, c.canary_state, c.sent) == ("paused", "canary: waiting", "held", 50)
    wave = db.session.scalar(select(func.count()).select_from(Recipient).where(
        Recipient.campaign_id == c.id, Recipient.wave == 1, Recipient.status == "sent"))
    assert wave == 50
    report = control.canary_report(c)
    assert (report["recipients"], report["sent"], report["failed"]) == (50, 50, 0)
    control.resume(c.id, ACTOR)
    drain()
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.sent, c.canary_state) == ("sent", 1000, "done")


def test_the_halt_window_judges_the_newest_outcomes():
    assert guard.judge([(8, 2), (10, 0)], 15) == (15, 2)
    assert guard.judge([(0, 10), (100, 0)], 50) == (50, 10)  # the older step fills the window in proportion
    assert guard.judge([(3, 1)], 200) == (4, 1)


# -- the engine's edges around a pause ---------------------------------------------------------

@pytest.fixture
def sink(app):
    server = HttpSink()
    yield server
    server.close()


def on_send(monkeypatch, call: int, action) -> list[int]:
    """Run `action` (in the engine's own session, as another process's commit would land) just
    before the channel's `call`-th send_batch; returns the batch sizes sent."""
    real, calls = channel_settings.build, []

    def build(kind):
        channel = real(kind)
        send = channel.send_batch

        def send_batch(messages, deadline=None):
            calls.append(len(messages))
            if len(calls) == call:
                action()
            return send(messages, deadline=deadline)

        channel.send_batch = send_batch
        return channel

    monkeypatch.setattr(channel_settings, "build", build)
    return calls


def chunk_of(campaign_id: int) -> CampaignChunk:
    db.session.expire_all()
    return db.session.scalars(select(CampaignChunk).where(CampaignChunk.campaign_id == campaign_id)).one()


def assert_each_once(sink: HttpSink, n: int) -> None:
    got = collections.Counter(r["json"]["userId"] for r in sink.requests)
    assert got == collections.Counter({f"u{i}": 1 for i in range(n)}), got.most_common(3)


def test_a_run_that_sees_the_pause_frees_its_chunk_at_once_and_resume_carries_on(app, sink, monkeypatch):
    c = webhook_campaign(sink, 40, rate=100)  # steps of 5
    on_send(monkeypatch, 2, lambda: control.pause(c.id, ACTOR))
    lifecycle.send(c.id, None, ACTOR)
    drain()
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.sent, len(sink.requests)) == ("paused", 10, 10)  # the step in flight, then nothing
    chunk = chunk_of(c.id)
    assert (chunk.done, chunk.leased_until, chunk.lease_token) == (False, None, None)
    control.resume(c.id, ACTOR)
    drain()
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.sent) == ("sent", 40)
    assert_each_once(sink, 40)


def test_a_quick_pause_and_resume_leaves_the_chunk_with_its_running_run(app, sink, monkeypatch):
    c = webhook_campaign(sink, 40, rate=100)
    seen = {}

    def pause_resume_and_race():
        control.pause(c.id, ACTOR)
        control.resume(c.id, ACTOR)  # before the run recorded its step: it never saw the pause
        chunk = chunk_of(c.id)
        seen["run"] = chunk.run
        seen["new run"] = chunks.deliver(chunk.id)  # resume's new run, while the old one holds the lease

    on_send(monkeypatch, 2, pause_resume_and_race)
    lifecycle.send(c.id, None, ACTOR)
    drain()
    assert seen["run"] == 2 and seen["new run"] == {"state": "leased", "delivered": 0, "failed": 0}
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.sent) == ("sent", 40)
    assert_each_once(sink, 40)


def test_a_job_that_fails_while_paused_gives_its_chunk_back_for_resume(app, sink, monkeypatch):
    c = webhook_campaign(sink, 40, rate=100)

    def pause_then_crash():
        control.pause(c.id, ACTOR)
        raise RuntimeError("the channel blew up")

    on_send(monkeypatch, 2, pause_then_crash)
    lifecycle.send(c.id, None, ACTOR)
    drain()  # the job raises; RQ records it failed
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.sent) == ("paused", 5)
    chunk = chunk_of(c.id)
    # Noted, not counted (resume hands the chunk a new run), and the dead run's lease is gone.
    assert chunk.last_error == "RuntimeError: the channel blew up"
    assert (chunk.attempts, chunk.run, chunk.done, chunk.lease_token) == (0, 1, False, None)
    control.resume(c.id, ACTOR)
    drain()
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.sent) == ("sent", 40)
    assert_each_once(sink, 40)


def test_a_run_that_waited_for_its_time_looks_at_the_status_again(app, monkeypatch):
    c = make_campaign(300)
    lifecycle.send(c.id, None, ACTOR)
    assert plan.plan(c.id) == 1
    chunk = chunk_of(c.id)
    # Its job arrived early (RQ schedules to the second): it sleeps until its time...
    db.session.execute(update(CampaignChunk).where(CampaignChunk.id == chunk.id)
                       .values(enqueued_at=utcnow() + timedelta(seconds=1.5)))
    db.session.commit()
    slept, real_sleep = [], time.sleep

    def sleep(seconds):
        slept.append(seconds)
        if len(slept) == 1:  # ... and the campaign is paused meanwhile
            control.pause(c.id, ACTOR)
        else:
            real_sleep(seconds)

    monkeypatch.setattr(chunks.time, "sleep", sleep)
    result = chunks.deliver(chunk.id)
    monkeypatch.undo()
    assert 1.0 < slept[0] <= 1.5 and result.get("delivered", 0) == 0, result
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.sent) == ("paused", 0)
    control.resume(c.id, ACTOR)
    drain()
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.sent) == ("sent", 300)


def test_a_spread_bucket_grants_one_message_at_a_time_and_sleeps_only_short_waits(app):
    slow = TokenBucket("campaign:slow", 0.5)  # one message every 2 s
    box = Slice(time.monotonic() + 0.2, None, slow)
    assert box.step == 1 and box.acquire(1) == 0  # the first token is there at once
    started = time.monotonic()
    wait = box.acquire(1)  # the next is 2 s away: longer than a short wait, so handed back
    assert 1.5 < wait <= 2.0 and time.monotonic() - started < 0.5
    fast = TokenBucket("campaign:fast", 5.0)  # one every 0.2 s: short
    box = Slice(time.monotonic() - 1, None, fast)  # already past its deadline
    assert box.acquire(1) == 0
    started = time.monotonic()
    assert box.acquire(1) == 0 and 0.15 < time.monotonic() - started < SHORT_WAIT + 0.2
    assert box.take_slept() > 0.15


def test_the_spread_rate_is_the_audience_over_the_window_never_above_the_channel(app):
    c = make_campaign(600)
    c.spread_minutes = 1
    assert control.spread_rate(c, 200.0) == 10.0
    assert control.spread_rate(c, 4.0) == 4.0
    c.spread_minutes = None
    assert control.spread_rate(c, 200.0) is None
    db.session.rollback()
    assert db.session.get(Campaign, c.id).spread_minutes is None
