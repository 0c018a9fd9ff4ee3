"""Recipient time (issue 15) with real RQ worker processes and their schedulers on PostgreSQL:
a local-time send whose first wave is due within a minute (in-app and a webhook sink), pause
and resume with a wave ahead, cancel and unschedule with waves pending, quiet hours holding
recipients and releasing them when the window ends. In-process checks (SimpleWorker) of
ignoreQuietHours and of one-call notifications run on SQLite too. Every case ends with the
campaign's counters equal to its recipient rows."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import pytest
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from sqlalchemy import func, select

from dashboard.extensions import db, get_queue, get_redis
from dashboard.models import Campaign, CampaignChunk, CampaignWave, Notification, Recipient, User
from dashboard.models.campaign import job_id_for
from dashboard.services import campaigns, control, lifecycle, notifications, recipient_time, recipients, workspace
from dashboard.services.actor import Actor
from tests.engine import drain, wait_for
from tests.test_api_campaigns import make_template
from tests.test_delivery_control_workers import assert_each_once, fresh, pool, sinks  # noqa: F401 (fixtures)
from tests.test_delivery_faults import assert_counters_match_rows, sent_count, status_of

ACTOR = Actor.system("test")
PG_ONLY = pytest.mark.skipif(os.environ.get("HERALD_TEST_DB", "sqlite") != "postgresql",
                             reason="real-worker tests run on PostgreSQL (the production database)")
LEAD = 15  # seconds: the soonest a "next minute" wave may be due (time to check it is still waiting)
GROUPS = {"UTC": "t", "America/New_York": "n", "Asia/Tokyo": "k", "Asia/Kolkata": "i"}


def next_minute(lead: float = LEAD) -> datetime:
    """The first whole UTC minute at least `lead` seconds ahead (every zone's minutes start then)."""
    return (datetime.now(UTC) + timedelta(seconds=lead)).replace(second=0, microsecond=0) + timedelta(minutes=1)


def zoned_users(per_zone: int, zones) -> dict[str, set[str]]:
    """per_zone users in each zone, stored in the user directory: {zone: {userId}}."""
    out = {}
    for zone in zones:
        ids = {f"{GROUPS[zone]}{i}" for i in range(per_zone)}
        db.session.add_all(User(user_id=u, timezone=zone) for u in sorted(ids))
        out[zone] = ids
    db.session.commit()
    return out


def make_campaign(channel: str, users, name: str = "Recipient time") -> Campaign:
    make_template(channels={"in_app": {"title": "Hi {{ firstName }}", "body": "{{ offer }}"},
                            "email": {"subject": "Hi {{ firstName }}", "text": "{{ offer }}"}})
    c = campaigns.create({"name": name, "templateId": "promo", "channel": channel,
                          "variables": {"offer": "10% off"}}, ACTOR)
    recipients.add_manual(c.id, sorted(users), None, ACTOR)
    return c


def send_at(at: datetime, passed: str = "next_day", fallback: str = "UTC") -> control.SendOptions:
    return control.parse_options({"sendAt": {"localTime": at.strftime("%H:%M"), "date": at.date().isoformat(),
                                             "fallbackZone": fallback, "passed": passed}})


def status_by_user(campaign_id: int) -> dict[str, str]:
    db.session.expire_all()
    return dict(db.session.execute(select(Recipient.user_id, Recipient.status)
                                   .where(Recipient.campaign_id == campaign_id)).all())


def users_in(campaign_id: int, status: str) -> set[str]:
    return {u for u, s in status_by_user(campaign_id).items() if s == status}


def waves(campaign_id: int) -> list[dict]:
    return recipient_time.waves_view(fresh(campaign_id), datetime.now(UTC))


def wave_chunk(campaign_id: int, zone: str) -> CampaignChunk:
    """The (single) chunk of the wave that holds a zone's recipients."""
    number = next(w["number"] for w in waves(campaign_id) if zone in w["zones"])
    db.session.expire_all()
    return db.session.scalars(select(CampaignChunk).where(CampaignChunk.campaign_id == campaign_id,
                                                          CampaignChunk.wave == number)).one()


def scheduled_for(job_id: str) -> float | None:
    """When RQ's scheduler will run a job (epoch seconds), or None if it is not scheduled."""
    for name in ("batch", "realtime"):
        score = get_redis().zscore(ScheduledJobRegistry(queue=get_queue(name)).key, job_id)
        if score is not None:
            return score
    return None


def delivered_at(campaign_id: int, users: set[str]) -> list[datetime]:
    return db.session.scalars(select(Recipient.sent_at).where(Recipient.campaign_id == campaign_id,
                                                              Recipient.user_id.in_(users))).all()


def sleep_until(at: datetime) -> None:
    time.sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()))


def feed_rows(campaign_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(Notification)
                             .where(Notification.campaign_id == campaign_id))


# -- local-time send: the first wave within a minute -------------------------------------------------

@PG_ONLY
@pytest.mark.parametrize("channel", ("in_app", "webhook"))
def test_a_local_time_wave_due_within_a_minute_is_delivered_by_the_worker_and_later_waves_wait(
        sinks, pool, channel):  # noqa: F811
    sink = sinks(channel, 500.0)
    zones = zoned_users(10, ("UTC", "America/New_York", "Asia/Tokyo"))
    c = make_campaign(channel, set().union(*zones.values()))
    pool()
    first = next_minute()
    c = lifecycle.send(c.id, None, ACTOR, options=send_at(first))
    assert (c.status, c.scheduled_at) == ("scheduled", first)
    plan = waves(c.id)
    expected = sorted([(first, ["UTC"]),
                       (recipient_time.local_instant(first.date(), first.time(), "America/New_York"),
                        ["America/New_York"]),
                       # 09:00 in Tokyo on that date was hours ago: the next day's.
                       (recipient_time.local_instant(first.date() + timedelta(days=1), first.time(), "Asia/Tokyo"),
                        ["Asia/Tokyo"])])
    assert [(w["dueAt"], w["zones"], w["recipients"], w["status"], w["localTime"]) for w in plan] == [
        (due, z, 10, "waiting", first.strftime("%H:%M")) for due, z in expected]
    assert expected[1][0] - first >= timedelta(hours=4), "the later waves are hours ahead"
    assert recipient_time.next_wave(plan) == first

    sleep_until(first - timedelta(seconds=2))
    assert status_of(c.id) == "scheduled" and not sink.deliveries(c.id), "the wave started early"
    wait_for(lambda: sent_count(c.id) == 10, 30, "the first wave to be delivered")
    assert min(delivered_at(c.id, zones["UTC"])) >= first
    assert_each_once(sink, c.id, zones["UTC"])
    time.sleep(2)  # the worker sweeps meanwhile: the later waves stay put
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.sent, c.pending, c.failed, c.skipped) == ("sending", 10, 20, 0, 0)
    assert users_in(c.id, "pending") == zones["America/New_York"] | zones["Asia/Tokyo"]
    assert [w["status"] for w in waves(c.id)] == ["done", "waiting", "waiting"]
    assert recipient_time.next_wave(waves(c.id)) == expected[1][0]
    for zone, (due, _) in zip(("America/New_York", "Asia/Tokyo"), expected[1:], strict=True):
        chunk = wave_chunk(c.id, zone)
        assert (chunk.done, chunk.enqueued_at) == (False, due)
        assert scheduled_for(job_id_for(chunk.id, chunk.run)) == pytest.approx(due.timestamp(), abs=1)
    assert_each_once(sink, c.id, zones["UTC"])


# -- pause, resume, cancel, unschedule with waves pending ---------------------------------------------

def sending_with_waves_ahead(sinks, pool, channel="in_app"):  # noqa: F811
    """A local-time send whose Tokyo wave has passed (sent now), whose UTC wave is due within a
    minute and whose New York wave is hours ahead; returns once Tokyo's wave is delivered."""
    sink = sinks(channel, 500.0)
    zones = zoned_users(10, ("UTC", "America/New_York", "Asia/Tokyo"))
    c = make_campaign(channel, set().union(*zones.values()))
    pool()
    soon = next_minute()
    c = lifecycle.send(c.id, None, ACTOR, options=send_at(soon, passed="now"))
    assert c.status == "sending", "the first wave (the passed one) is due now"
    assert [(w["zones"], w["reason"]) for w in waves(c.id)] == [
        (["Asia/Tokyo"], "passed"), (["UTC"], "local"), (["America/New_York"], "local")]
    wait_for(lambda: sent_count(c.id) == 10, 30, "the passed wave to be delivered")
    assert users_in(c.id, "sent") == zones["Asia/Tokyo"]
    return sink, zones, c, soon


@PG_ONLY
def test_pause_and_resume_keep_each_future_wave_at_its_time(sinks, pool):  # noqa: F811
    sink, zones, c, soon = sending_with_waves_ahead(sinks, pool)
    later = recipient_time.local_instant(soon.date(), soon.time(), "America/New_York")
    before = {z: wave_chunk(c.id, z).enqueued_at for z in ("UTC", "America/New_York")}
    assert before == {"UTC": soon, "America/New_York": later}
    control.pause(c.id, ACTOR)
    assert [w["status"] for w in waves(c.id)] == ["done", "paused", "paused"]
    time.sleep(1)
    control.resume(c.id, ACTOR)
    assert status_of(c.id) == "sending"
    for zone, due in before.items():  # a new run for each open chunk, at the wave's own time
        chunk = wave_chunk(c.id, zone)
        assert (chunk.run, chunk.enqueued_at) == (2, due)
        assert scheduled_for(job_id_for(chunk.id, chunk.run)) == pytest.approx(due.timestamp(), abs=1)
    assert [w["status"] for w in waves(c.id)] == ["done", "waiting", "waiting"]
    sleep_until(soon - timedelta(seconds=2))
    assert sent_count(c.id) == 10 and users_in(c.id, "sent") == zones["Asia/Tokyo"], "a wave was sent early"
    wait_for(lambda: sent_count(c.id) == 20, 30, "the UTC wave at its time")
    assert min(delivered_at(c.id, zones["UTC"])) >= soon
    time.sleep(2)  # both runs' jobs for the UTC chunk have fired by now: each recipient once
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.sent, c.pending) == ("sending", 20, 10)
    assert users_in(c.id, "pending") == zones["America/New_York"]
    assert_each_once(sink, c.id, zones["Asia/Tokyo"] | zones["UTC"])
    assert [w["status"] for w in waves(c.id)] == ["done", "done", "waiting"]


@PG_ONLY
def test_cancel_with_waves_pending_skips_them_and_the_waves_jobs_deliver_nothing(sinks, pool):  # noqa: F811
    sink, zones, c, soon = sending_with_waves_ahead(sinks, pool)
    utc = wave_chunk(c.id, "UTC")
    lifecycle.cancel(c.id, ACTOR)
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.sent, c.skipped, c.pending) == ("cancelled", 10, 20, 0)
    assert users_in(c.id, "skipped") == zones["UTC"] | zones["America/New_York"]
    assert [w["status"] for w in waves(c.id)] == ["done", "cancelled", "cancelled"]
    assert recipient_time.next_wave(waves(c.id)) is None
    job = Job.fetch(job_id_for(utc.id, utc.run), connection=get_redis())
    wait_for(lambda: job.get_status(refresh=True) == "finished", (soon - datetime.now(UTC)).total_seconds() + 20,
             "the UTC wave's job to fire")
    assert job.return_value() == {"skipped": "done"}
    time.sleep(1)
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.sent, c.skipped) == ("cancelled", 10, 20)
    assert_each_once(sink, c.id, zones["Asia/Tokyo"])
    assert feed_rows(c.id) == 10


@PG_ONLY
def test_unscheduling_a_local_time_send_returns_a_draft_without_waves_and_sends_nothing(sinks, pool):  # noqa: F811
    sink = sinks("in_app", 500.0)
    zones = zoned_users(5, ("UTC", "Asia/Kolkata"))
    c = make_campaign("in_app", zones["UTC"] | zones["Asia/Kolkata"])
    pool()
    first = next_minute()
    c = lifecycle.send(c.id, None, ACTOR, options=send_at(first))
    assert c.status == "scheduled" and c.wave_count == 2
    c = lifecycle.unschedule(c.id, ACTOR)
    assert (c.status, c.scheduled_at, c.send_at, c.wave_count) == ("draft", None, None, 0)
    assert db.session.scalar(select(func.count()).select_from(CampaignWave)
                             .where(CampaignWave.campaign_id == c.id)) == 0
    assert set(db.session.scalars(select(Recipient.wave).where(Recipient.campaign_id == c.id))) == {None}
    assert waves(c.id) == []
    sleep_until(first + timedelta(seconds=4))  # the schedule's job fires and finds a draft
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.sent, c.pending) == ("draft", 0, 10)
    assert not sink.deliveries(c.id) and feed_rows(c.id) == 0
    assert db.session.scalar(select(func.count()).select_from(CampaignChunk)
                             .where(CampaignChunk.campaign_id == c.id)) == 0


# -- quiet hours ---------------------------------------------------------------------------------------

def quiet_around_now_in_utc() -> datetime:
    """Quiet hours from a minute ago to the next whole minute (>= LEAD s ahead), both in UTC
    wall-clock terms: recipients in UTC are inside, recipients in Asia/Kolkata are not."""
    ends = next_minute()
    starts = datetime.now(UTC) - timedelta(minutes=1)
    workspace.set_quiet_hours(True, starts.strftime("%H:%M"), ends.strftime("%H:%M"), ACTOR)
    return ends


@PG_ONLY
def test_quiet_hours_hold_recipients_until_their_window_ends_then_the_worker_delivers_them(sinks, pool):  # noqa: F811
    sink = sinks("in_app", 500.0)
    zones = zoned_users(10, ("UTC", "Asia/Kolkata"))
    c = make_campaign("in_app", zones["UTC"] | zones["Asia/Kolkata"])
    ends = quiet_around_now_in_utc()
    pool()
    lifecycle.send(c.id, None, ACTOR)
    wait_for(lambda: sent_count(c.id) == 10, 30, "the recipients outside their quiet hours")
    assert users_in(c.id, "sent") == zones["Asia/Kolkata"]
    view = waves(c.id)
    held = [w for w in view if w["reason"] == "quiet"]
    assert [(w["dueAt"], w["zones"], w["recipients"], w["status"]) for w in held] == [(ends, ["UTC"], 10, "held")]
    assert recipient_time.next_wave(view) == ends
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.pending) == ("sending", 10)
    sleep_until(ends - timedelta(seconds=2))
    assert users_in(c.id, "pending") == zones["UTC"], "released before the window ended"
    wait_for(lambda: status_of(c.id) == "sent", 30, "the held recipients after the window")
    assert min(delivered_at(c.id, zones["UTC"])) >= ends
    c = assert_counters_match_rows(c.id)
    assert (c.sent, c.failed, c.skipped) == (20, 0, 0)
    assert_each_once(sink, c.id, zones["UTC"] | zones["Asia/Kolkata"])
    assert [w["status"] for w in waves(c.id)] == ["done", "done"]


def test_ignore_quiet_hours_sends_everyone_at_once():
    zones = zoned_users(5, ("UTC", "Asia/Kolkata"))
    c = make_campaign("in_app", zones["UTC"] | zones["Asia/Kolkata"])
    quiet_around_now_in_utc()
    lifecycle.send(c.id, None, ACTOR, options=control.parse_options({"ignoreQuietHours": True}))
    drain()
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.sent, c.quiet_hours, c.wave_count) == ("sent", 10, False, 0)
    assert feed_rows(c.id) == 10 and waves(c.id) == []


def test_the_same_send_without_the_option_holds_the_recipients_in_quiet_hours():
    zones = zoned_users(5, ("UTC", "Asia/Kolkata"))
    c = make_campaign("in_app", zones["UTC"] | zones["Asia/Kolkata"])
    ends = quiet_around_now_in_utc()
    lifecycle.send(c.id, None, ACTOR)
    drain()  # what is due now; the held wave's job waits in RQ's scheduler
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.sent, c.pending) == ("sending", 5, 5)
    assert users_in(c.id, "pending") == zones["UTC"]
    assert [(w["reason"], w["dueAt"], w["status"]) for w in waves(c.id) if w["zones"] == ["UTC"]] == [
        ("quiet", ends, "held")]


def one_call(targets, **extra) -> Campaign:
    make_template(channels={"in_app": {"title": "Hi {{ firstName }}", "body": "{{ offer }}"}})
    return notifications.send({"templateId": "promo", "targets": sorted(targets),
                               "variables": {"offer": "now"}, **extra}, ACTOR)


def test_a_one_call_notification_bypasses_quiet_hours():
    zones = zoned_users(3, ("UTC", "Asia/Kolkata"))
    quiet_around_now_in_utc()
    c = one_call(zones["UTC"] | zones["Asia/Kolkata"])
    drain()
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.sent, c.wave_count) == ("sent", 6, 0)
    assert feed_rows(c.id) == 6


def test_a_one_call_notification_that_asks_for_quiet_hours_is_held():
    zones = zoned_users(3, ("UTC", "Asia/Kolkata"))
    ends = quiet_around_now_in_utc()
    c = one_call(zones["UTC"] | zones["Asia/Kolkata"], quietHours=True)
    drain()
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.sent, c.pending, c.quiet_hours) == ("sending", 3, 3, True)
    assert users_in(c.id, "pending") == zones["UTC"]
    assert [(w["reason"], w["dueAt"], w["zones"]) for w in waves(c.id) if w["reason"] == "quiet"] == [
        ("quiet", ends, ["UTC"])]


# -- in-process: a scheduled local-time send cancelled or unscheduled -----------------------------------

def test_cancelling_a_scheduled_local_time_send_skips_everyone_and_its_timer_starts_nothing():
    from dashboard.services import recovery

    zones = zoned_users(3, ("UTC", "Asia/Kolkata"))
    c = make_campaign("in_app", zones["UTC"] | zones["Asia/Kolkata"])
    first = next_minute()
    c = lifecycle.send(c.id, None, ACTOR, options=send_at(first))
    assert c.status == "scheduled" and len(waves(c.id)) == 2
    lifecycle.cancel(c.id, ACTOR)
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.skipped, c.pending) == ("cancelled", 6, 0)
    assert {w["status"] for w in waves(c.id)} == {"cancelled"}
    assert not recovery.fire_scheduled(c.id, first.isoformat())  # what the schedule's job does when it fires
    drain()
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.sent) == ("cancelled", 0) and feed_rows(c.id) == 0


def test_an_unscheduled_local_time_send_can_then_be_sent_now_to_everyone():
    zones = zoned_users(3, ("UTC", "Asia/Kolkata"))
    c = make_campaign("in_app", zones["UTC"] | zones["Asia/Kolkata"])
    lifecycle.send(c.id, None, ACTOR, options=send_at(next_minute()))
    lifecycle.unschedule(c.id, ACTOR)
    c = lifecycle.send(c.id, None, ACTOR)
    assert (c.status, c.wave_count, c.send_at) == ("sending", 0, None)
    drain()
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.sent) == ("sent", 6) and feed_rows(c.id) == 6
