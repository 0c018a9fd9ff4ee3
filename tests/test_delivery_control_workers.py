"""Delivery control (issue 14) with real RQ worker processes on PostgreSQL: pause and resume
per channel (in-app, email to a real SMTP server, webhook to a real HTTP server), pause then
kill -9 then resume, the canary wave (hold, Continue, the automatic halt), a send spread over a
minute across two workers, and the sweep around paused campaigns. Every case ends with the
campaign's counters equal to its recipient rows and each recipient delivered exactly once."""

from __future__ import annotations

import collections
import os
import random
import time
from datetime import timedelta

import pytest
from rq import Worker
from sqlalchemy import select, update

from dashboard import jobs
from dashboard.extensions import db, get_redis
from dashboard.models import AuditEvent, Campaign, CampaignChunk, Recipient, utcnow
from dashboard.services import control, lifecycle, recovery
from dashboard.services.actor import Actor
from dashboard.services.delivery import guard
from tests.engine import kill_9, start_worker, wait_for
from tests.test_delivery_faults import (
    WORKER_ENV,
    Rig,
    assert_counters_match_rows,
    make_send,
    sent_count,
    status_of,
)

pytestmark = pytest.mark.skipif(os.environ.get("HERALD_TEST_DB", "sqlite") != "postgresql",
                                reason="real-worker delivery control runs on PostgreSQL (the production database)")
ACTOR = Actor.system("test")
QUIET_SECONDS = 10.0  # a pause must deliver nothing for this long
GRACE_SECONDS = 1.0  # a step already in flight when the pause returned may still land


@pytest.fixture
def sinks(app, tmp_path, monkeypatch):
    """sinks(channel, rate): the channel wired to a real sink at that rate limit (see test_delivery_faults)."""
    monkeypatch.setenv("HERALD_WORKER_LOG", str(tmp_path / "worker.log"))
    app.config["HERALD_STALL_SECONDS"] = 3
    made = []

    def make(channel: str, rate: float = 5000) -> Rig:
        made.append(Rig(app, channel, rate))
        return made[-1]

    yield make
    for r in made:
        r.close()
    app.config["HERALD_STALL_SECONDS"] = 30


@pytest.fixture
def pool(app):
    """start(**env): one more real worker process (the Procfile's command; the fault matrix's
    settings unless overridden); all are killed at the end."""
    procs = []

    def start(**env):
        procs.append(start_worker(app, **(WORKER_ENV | env)))
        return procs[-1]

    yield start
    for proc in procs:
        if proc.poll() is None:
            kill_9(proc)


def fresh(campaign_id: int) -> Campaign:
    db.session.expire_all()
    return db.session.get(Campaign, campaign_id)


def wave_users(campaign_id: int) -> set[str]:
    return set(db.session.scalars(select(Recipient.user_id).where(Recipient.campaign_id == campaign_id,
                                                                  Recipient.wave == 1)))


def audit_rows(campaign_id: int, action: str) -> list[AuditEvent]:
    return db.session.scalars(select(AuditEvent).where(AuditEvent.target_type == "campaign",
                                                       AuditEvent.target_id == str(campaign_id),
                                                       AuditEvent.action == action)).all()


def chunk_state(campaign_id: int) -> list[tuple]:
    return db.session.execute(select(CampaignChunk.id, CampaignChunk.run, CampaignChunk.attempts, CampaignChunk.done,
                                     CampaignChunk.last_error).where(CampaignChunk.campaign_id == campaign_id)
                              .order_by(CampaignChunk.id)).all()


def assert_each_once(sink, campaign_id: int, users: set[str]) -> None:
    got = sink.per_user(campaign_id)
    assert set(got) == users, f"missing {len(users - set(got))}, unexpected {len(set(got) - users)}"
    twice = [(u, k) for u, k in got.items() if k > 1]
    assert not twice, f"{len(twice)} recipients delivered more than once, e.g. {twice[:3]}"


def pause_and_watch(sink, campaign_id: int, quiet: float = QUIET_SECONDS) -> int:
    """Pause, then watch: after the grace nothing more reaches the sink or the counters for
    `quiet` seconds. Returns how many were delivered when the pause took hold."""
    control.pause(campaign_id, ACTOR)
    answered, at_answer = time.monotonic(), len(sink.deliveries(campaign_id))
    assert status_of(campaign_id) == "paused"
    time.sleep(GRACE_SECONDS)
    settled, settled_sent = len(sink.deliveries(campaign_id)), sent_count(campaign_id)
    # One worker runs one slice at a time: at most the step it had in flight lands after the pause.
    assert settled - at_answer <= sink.step, f"{settled - at_answer} delivered after the pause returned"
    while time.monotonic() < answered + quiet:
        time.sleep(0.5)
        assert status_of(campaign_id) == "paused"
        assert len(sink.deliveries(campaign_id)) == settled, "a delivery while paused"
        assert sent_count(campaign_id) == settled_sent, "the counters moved while paused"
    late = [at for at, _ in sink.deliveries(campaign_id) if at is not None and at > answered + GRACE_SECONDS]
    assert not late, f"{len(late)} deliveries more than {GRACE_SECONDS:g} s after the pause returned"
    c = assert_counters_match_rows(campaign_id)
    assert c.paused_reason == f"paused by {ACTOR.label}" and c.sent == settled_sent
    return settled


# -- pause and resume -------------------------------------------------------------------------

@pytest.mark.parametrize("channel", ("in_app", "email", "webhook"))
def test_pause_mid_send_delivers_nothing_and_resume_completes_each_recipient_once(sinks, pool, channel):
    n, rate = 600, 200.0  # 3 s of sending at the channel's limit: still running when paused
    sink = sinks(channel, rate)
    c = make_send(channel, n)
    pool()
    lifecycle.send(c.id, None, ACTOR)
    wait_for(lambda: sent_count(c.id) >= 150, 60, "150 sent")
    held = pause_and_watch(sink, c.id)
    assert held < n, "finished before the pause; nothing was tested"
    control.resume(c.id, ACTOR)
    wait_for(lambda: status_of(c.id) == "sent", 60, "the send to complete after resume")
    c = assert_counters_match_rows(c.id)
    assert (c.sent, c.failed, c.skipped, c.paused_reason) == (n, 0, 0, None)
    assert_each_once(sink, c.id, {f"u{i}" for i in range(n)})
    assert [e.actor_label for e in audit_rows(c.id, "campaign.pause")] == [ACTOR.label]
    assert [e.details["reason"] for e in audit_rows(c.id, "campaign.resume")] == [f"paused by {ACTOR.label}"]


@pytest.mark.parametrize("channel", ("in_app", "webhook"))
def test_pause_kill_9_restart_resume_loses_nobody_and_sends_nobody_twice(sinks, pool, channel):
    n, rate = 600, 200.0
    sink = sinks(channel, rate)
    c = make_send(channel, n)
    worker = pool()
    lifecycle.send(c.id, None, ACTOR)
    wait_for(lambda: sent_count(c.id) >= 150, 60, "150 sent")
    held = pause_and_watch(sink, c.id, quiet=3.0)
    kill_9(worker)  # the worker, its scheduler and its work horse, while paused
    pool()
    time.sleep(4)  # the new worker sweeps (every second, stall 3 s): a paused send stays put
    assert status_of(c.id) == "paused" and len(sink.deliveries(c.id)) == held
    assert_counters_match_rows(c.id)
    control.resume(c.id, ACTOR)
    wait_for(lambda: status_of(c.id) == "sent", 60, "the send to complete after restart and resume")
    c = assert_counters_match_rows(c.id)
    assert (c.sent, c.failed, c.skipped) == (n, 0, 0)
    assert_each_once(sink, c.id, {f"u{i}" for i in range(n)})


def test_rapid_pause_and_resume_across_two_workers_strands_no_chunk_and_sends_each_once(sinks, pool):
    """Runs that saw a pause free their chunk in the same transaction, runs that did not keep it,
    and resume's new runs find it free or taken: no chunk waits for a lease to lapse."""
    n, rate = 1200, 200.0
    sink = sinks("webhook", rate)
    c = make_send("webhook", n)
    pool(HERALD_BATCH_CHUNK="100")
    pool(HERALD_BATCH_CHUNK="100")
    lifecycle.send(c.id, None, ACTOR)
    wait_for(lambda: sent_count(c.id) >= 100, 60, "100 sent")
    rng = random.Random(14)
    for _ in range(6):
        control.pause(c.id, ACTOR)
        time.sleep(rng.uniform(0.0, 0.4))
        control.resume(c.id, ACTOR)
        time.sleep(rng.uniform(0.1, 0.5))
    assert n - sent_count(c.id) > 200, "nearly finished during the pauses; nothing was tested"
    wait_for(lambda: status_of(c.id) == "sent", 60, "the send to complete")
    # A stranded chunk would have waited for its lease to lapse, then been requeued by the sweep,
    # which counts that as a lost job on the chunk.
    assert [(r.attempts, r.last_error) for r in chunk_state(c.id) if r.attempts or r.last_error] == []
    c = assert_counters_match_rows(c.id)
    assert (c.sent, c.failed) == (n, 0)
    assert_each_once(sink, c.id, {f"u{i}" for i in range(n)})
    assert len(audit_rows(c.id, "campaign.pause")) == len(audit_rows(c.id, "campaign.resume")) == 6


# -- canary ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("channel", "workers", "chunk"), [("webhook", 1, "500"), ("in_app", 2, "25")])
def test_a_5_percent_canary_holds_and_continue_sends_the_rest_once(sinks, pool, channel, workers, chunk):
    """In-app: the wave in two chunks on two workers, which finish together and both see the
    wave done; the campaign is held once."""
    n = 1000
    sink = sinks(channel, 500.0)
    c = make_send(channel, n)
    for _ in range(workers):
        pool(HERALD_BATCH_CHUNK=chunk)
    lifecycle.send(c.id, None, ACTOR, options=control.parse_options({"canary": {"percent": 5}}))
    wait_for(lambda: status_of(c.id) == "paused", 30, "the canary hold")
    c = assert_counters_match_rows(c.id)
    assert (c.paused_reason, c.canary_state, c.sent, c.failed) == (control.CANARY_WAITING, "held", 50, 0)
    wave = wave_users(c.id)
    assert len(wave) == 50
    sent_rows = set(db.session.scalars(select(Recipient.user_id).where(Recipient.campaign_id == c.id,
                                                                       Recipient.status == "sent")))
    assert sent_rows == wave
    assert_each_once(sink, c.id, wave)
    assert [e.actor_label for e in audit_rows(c.id, "campaign.hold")] == ["system"]
    time.sleep(3)  # the hold holds (the worker sweeps every second meanwhile)
    assert status_of(c.id) == "paused" and set(sink.per_user(c.id)) == wave
    control.resume(c.id, ACTOR)  # Continue
    wait_for(lambda: status_of(c.id) == "sent", 30, "the rest of the audience")
    c = assert_counters_match_rows(c.id)
    assert (c.sent, c.failed, c.canary_state) == (n, 0, "done")
    assert_each_once(sink, c.id, {f"u{i}" for i in range(n)})
    assert [e.details["reason"] for e in audit_rows(c.id, "campaign.continue")] == [control.CANARY_WAITING]


def canary_sample(campaign_id: int) -> list[int]:
    """The wave the engine will pick, from the stored seed (control.canary_sample's rule)."""
    c = fresh(campaign_id)
    ids = db.session.scalars(select(Recipient.id).where(Recipient.campaign_id == c.id).order_by(Recipient.id)).all()
    n = control.canary_count(len(ids), c.canary_size, c.canary_percent)
    return sorted(random.Random(c.canary_seed).sample(ids, n))


def test_a_canary_whose_sink_fails_20_percent_halts_itself_within_the_wave(sinks, pool):
    n = 2000
    sink = sinks("webhook", 200.0)  # steps of 10: the rule is judged every 10 outcomes
    c = make_send("webhook", n)
    lifecycle.send(c.id, None, ACTOR, options=control.parse_options({"canary": {"percent": 5}}))
    sample = canary_sample(c.id)
    assert len(sample) == 100 and 100 >= 2 * guard.MIN_SAMPLE
    users = dict(db.session.execute(select(Recipient.id, Recipient.user_id).where(Recipient.campaign_id == c.id)).all())
    # A permanent 400 for every fifth recipient of the wave and of the rest: 20% of all users.
    wave_ids = set(sample)
    rest = [rid for rid in sorted(users) if rid not in wave_ids]
    failing = {users[rid] for rid in sample[::5]} | {users[rid] for rid in rest[::5]}
    for user in failing:
        sink.http.plan[user] = [400]
    pool()
    wait_for(lambda: status_of(c.id) == "paused", 30, "the automatic halt")
    c = assert_counters_match_rows(c.id)
    assert c.paused_reason.startswith("automatic halt: "), c.paused_reason
    assert c.canary_state == "sending", "halted within the wave, not held after it"
    assert wave_users(c.id) == {users[rid] for rid in sample}, "the wave is the stored seed's sample"
    processed = c.sent + c.failed
    assert guard.MIN_SAMPLE <= processed < len(sample), f"{processed} processed: not within the wave"
    assert c.failed * 100 > 5 * processed
    halts = audit_rows(c.id, "campaign.halt")
    assert [e.actor_label for e in halts] == ["system"] and halts[0].details["reason"] in c.paused_reason
    seen = sink.per_user(c.id)
    assert set(seen) <= wave_users(c.id) and sum(seen.values()) == processed
    time.sleep(QUIET_SECONDS)  # nothing more goes out, whatever the sweep does meanwhile
    assert status_of(c.id) == "paused" and sink.per_user(c.id) == seen
    c = assert_counters_match_rows(c.id)
    assert c.sent + c.failed == processed
    lifecycle.cancel(c.id, ACTOR)  # what the marketer does next
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.skipped) == ("cancelled", n - processed)


# -- spread --------------------------------------------------------------------------------------

def test_spread_over_a_minute_keeps_the_busiest_second_at_12_across_two_workers(sinks, pool, capsys):
    n = 600
    sink = sinks("webhook", 200.0)  # the channel allows 20x the spread's 10/s
    c = make_send("webhook", n)
    # Production's slice and sweep interval; three chunks, so both workers send at once
    # throughout and the campaign's bucket is all that keeps them to 10/s together.
    env = {"HERALD_SLICE_SECONDS": "5", "HERALD_SWEEP_SECONDS": "10", "HERALD_BATCH_CHUNK": "200"}
    pool(**env)
    pool(**env)
    wait_for(lambda: sum(w.state == "idle" for w in Worker.all(connection=get_redis())) == 2, 30,
             "both workers to be up and waiting for jobs")
    started = time.monotonic()
    lifecycle.send(c.id, None, ACTOR, options=control.parse_options({"spreadMinutes": 1}))
    wait_for(lambda: status_of(c.id) in ("sent", "failed"), 100, "the spread send to finish")
    took = time.monotonic() - started
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.sent) == ("sent", n)
    assert_each_once(sink, c.id, {f"u{i}" for i in range(n)})
    offset = time.time() - time.monotonic()  # the sink's clock is monotonic: per wall-clock second
    per_second = collections.Counter(int(at + offset) for at, _ in sink.deliveries(c.id))
    times = sorted(at for at, _ in sink.deliveries(c.id))
    sliding = max(sum(1 for t in times[i:i + 20] if t < start + 1.0) for i, start in enumerate(times))
    gaps = [b - a for a, b in zip(times, times[1:], strict=False) if b - a > 0.25]  # idle time between slices
    with capsys.disabled():
        print(f"\n  spread: {n} in {took:.1f} s, busiest wall-clock second {max(per_second.values())}, "
              f"busiest sliding second {sliding}, first after {times[0] - started:.1f} s, "
              f"{len(gaps)} gaps > 0.25 s totalling {sum(gaps):.1f} s")
    assert max(per_second.values()) <= 12, per_second.most_common(3)
    assert 55 <= took <= 75, f"took {took:.1f} s"
    ran = [w.successful_job_count for w in Worker.all(connection=get_redis())]
    assert len(ran) == 2 and min(ran) >= 5, f"jobs per worker: {ran} (both should have sent)"


# -- the sweep and the hold timer ------------------------------------------------------------------

def test_the_sweep_leaves_a_paused_campaign_alone_even_with_stale_chunks(sinks, pool):
    n = 600
    sink = sinks("in_app", 200.0)
    c = make_send("in_app", n)
    pool()
    lifecycle.send(c.id, None, ACTOR)
    wait_for(lambda: sent_count(c.id) >= 150, 60, "150 sent")
    held = pause_and_watch(sink, c.id, quiet=2.0)
    # Make every open chunk look abandoned: enqueued an hour ago, no lease, its job long gone.
    db.session.execute(update(CampaignChunk).where(CampaignChunk.campaign_id == c.id, CampaignChunk.done.is_(False))
                       .values(enqueued_at=utcnow() - timedelta(hours=1), leased_until=None, lease_token=None))
    db.session.commit()
    before = chunk_state(c.id)
    assert any(not row.done for row in before)
    report = recovery.sweep()
    assert (report["requeued"], report["planned"], report["finished"], report["canary"]) == (0, 0, 0, 0), report
    time.sleep(2)  # and the worker's own sweeps
    assert chunk_state(c.id) == before, "the sweep touched a paused campaign's chunks"
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.sent, c.failed) == ("paused", held, 0)
    control.resume(c.id, ACTOR)
    wait_for(lambda: status_of(c.id) == "sent", 60, "the send to complete after resume")
    c = assert_counters_match_rows(c.id)
    assert (c.sent, c.failed) == (n, 0)
    assert_each_once(sink, c.id, {f"u{i}" for i in range(n)})


def hold_then(sinks, pool, channel: str, n: int) -> tuple:
    sink = sinks(channel, 500.0)
    c = make_send(channel, n)
    pool()
    lifecycle.send(c.id, None, ACTOR, options=control.parse_options({"canary": {"size": 20, "holdMinutes": 1}}))
    wait_for(lambda: status_of(c.id) == "paused", 30, "the canary hold")
    c = assert_counters_match_rows(c.id)
    assert (c.canary_state, c.sent, c.canary_hold_minutes) == ("held", 20, 1)
    return sink, c


def assert_continued_by_the_timer(sink, campaign_id: int, n: int) -> None:
    wait_for(lambda: status_of(campaign_id) == "sent", 30, "the rest of the audience after the hold")
    c = assert_counters_match_rows(campaign_id)
    assert (c.sent, c.failed, c.canary_state) == (n, 0, "done")
    assert_each_once(sink, campaign_id, {f"u{i}" for i in range(n)})
    assert [e.actor_label for e in audit_rows(campaign_id, "campaign.continue")] == [control.CANARY_TIMER.label]


def test_a_canary_hold_continues_by_itself_when_its_timer_fires(sinks, pool):
    n = 300
    sink, c = hold_then(sinks, pool, "webhook", n)
    # The hold's own timer is a minute away; a second timer for the same hold, due now, runs
    # the same job through the worker's scheduler.
    assert jobs.enqueue_canary_timer(c.id, c.paused_at, timedelta(seconds=1))
    assert_continued_by_the_timer(sink, c.id, n)


def test_a_canary_hold_whose_timer_was_lost_is_continued_by_the_sweep(sinks, pool):
    n = 300
    sink, c = hold_then(sinks, pool, "in_app", n)
    time.sleep(1)
    assert status_of(c.id) == "paused", "the sweep continued a hold before its time"
    # The hold began two minutes ago and its timer job is gone (Redis lost it).
    db.session.execute(update(Campaign).where(Campaign.id == c.id)
                       .values(paused_at=utcnow() - timedelta(minutes=2)))
    db.session.commit()
    report = recovery.sweep()
    assert report["canary"] == 1, report
    assert_continued_by_the_timer(sink, c.id, n)
    # A stale timer (for the hold as it was) fired late changes nothing.
    assert not control.continue_after_hold(c.id, (utcnow() - timedelta(minutes=2)).isoformat())

