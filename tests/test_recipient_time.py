"""Recipient time (issue 15) in process: wave planning across zones (half- and quarter-hour
offsets, DST gap and overlap, the "passed" choice), quiet hours, the CSV's timezone column,
and the engine's handling of waves and frequency caps. Real Redis and database."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import func, select

from dashboard.errors import ValidationError
from dashboard.extensions import db, get_redis
from dashboard.models import Campaign, CampaignChunk, CampaignWave, Notification, Recipient, Template, User
from dashboard.recipients_csv.reader import read_csv
from dashboard.recipients_csv.validation import validate_rows
from dashboard.services import campaigns, control, lifecycle, recipient_time, recipients, workspace
from dashboard.services.actor import Actor
from dashboard.services.recipient_time import QuietHours, SendAt, compute_waves, local_instant
from tests.engine import drain
from tests.test_delivery_faults import assert_counters_match_rows
from tests.test_sending import make_campaign

ACTOR = Actor("alice@example.com")
Z = UTC


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=Z) if "+" not in text else datetime.fromisoformat(text)


def waves_by_zone(waves) -> dict[str, datetime]:
    return {zone: w.due_at for w in waves for zone in w.zones}


# -- planning (pure) ---------------------------------------------------------------------------

def test_nine_am_in_each_zone_makes_one_wave_per_distinct_utc_instant():
    counts = {"Asia/Kolkata": 10, "Asia/Kathmandu": 5, "Asia/Tokyo": 7, "Europe/London": 3, "Europe/Paris": 4,
              "Europe/Berlin": 6, "America/New_York": 8, "Australia/Adelaide": 2, "Pacific/Chatham": 1}
    send_at = SendAt(time(9, 0), date(2026, 12, 2), "UTC")
    waves = compute_waves(counts, at("2026-12-01T12:00:00"), send_at, None)
    due = waves_by_zone(waves)
    assert due == {
        "Pacific/Chatham": at("2026-12-01T19:15:00"),  # +13:45 (summer time)
        "Australia/Adelaide": at("2026-12-01T22:30:00"),  # +10:30 (summer time)
        "Asia/Tokyo": at("2026-12-02T00:00:00"),
        "Asia/Kathmandu": at("2026-12-02T03:15:00"),  # +05:45
        "Asia/Kolkata": at("2026-12-02T03:30:00"),  # +05:30
        "Europe/Berlin": at("2026-12-02T08:00:00"),
        "Europe/Paris": at("2026-12-02T08:00:00"),
        "Europe/London": at("2026-12-02T09:00:00"),
        "America/New_York": at("2026-12-02T14:00:00"),
    }
    assert [w.due_at for w in waves] == sorted(w.due_at for w in waves)
    assert len(waves) == 8  # Paris and Berlin share an instant: one wave
    paris = next(w for w in waves if "Europe/Paris" in w.zones)
    assert (paris.zones, paris.recipients, paris.local_time, paris.reason) == (
        ["Europe/Berlin", "Europe/Paris"], 10, "09:00", "local")
    assert sum(w.recipients for w in waves) == sum(counts.values())


def test_a_time_in_the_spring_forward_gap_is_read_with_the_offset_before_the_gap():
    # New York, 14 Mar 2027: clocks jump 02:00 EST -> 03:00 EDT; 02:30 does not exist.
    assert local_instant(date(2027, 3, 14), time(2, 30), "America/New_York") == at("2027-03-14T07:30:00")
    # = 03:30 EDT: the same elapsed time after 02:00 as the marketer meant (RFC 5545 §3.3.5).
    assert at("2027-03-14T07:30:00").astimezone(recipient_time._zone("America/New_York")).strftime("%H:%M") == "03:30"
    # Europe/London, 28 Mar 2027: 01:30 does not exist -> 02:30 BST = 01:30Z
    assert local_instant(date(2027, 3, 28), time(1, 30), "Europe/London") == at("2027-03-28T01:30:00")


def test_a_time_in_the_fall_back_overlap_is_its_first_occurrence():
    # New York, 1 Nov 2026: 01:30 happens at 05:30Z (EDT) and again at 06:30Z (EST).
    assert local_instant(date(2026, 11, 1), time(1, 30), "America/New_York") == at("2026-11-01T05:30:00")
    waves = compute_waves({"America/New_York": 3, "Europe/London": 1}, at("2026-10-30T00:00:00"),
                          SendAt(time(1, 30), date(2026, 11, 1), "UTC"), None)
    assert waves_by_zone(waves)["America/New_York"] == at("2026-11-01T05:30:00")


def test_passed_times_go_to_the_next_day_or_now_as_chosen():
    now = at("2026-12-02T05:00:00")
    counts = {"Asia/Kolkata": 2, "Asia/Tokyo": 3, "Europe/London": 4}
    next_day = waves_by_zone(compute_waves(counts, now, SendAt(time(9, 0), date(2026, 12, 2), "UTC", "next_day"),
                                           None))
    assert next_day == {"Asia/Kolkata": at("2026-12-03T03:30:00"), "Asia/Tokyo": at("2026-12-03T00:00:00"),
                        "Europe/London": at("2026-12-02T09:00:00")}
    waves = compute_waves(counts, now, SendAt(time(9, 0), date(2026, 12, 2), "UTC", "now"), None)
    assert [(w.due_at, w.reason, w.zones, w.recipients) for w in waves] == [
        (now, "passed", ["Asia/Kolkata", "Asia/Tokyo"], 5),
        (at("2026-12-02T09:00:00"), "local", ["Europe/London"], 4)]


def test_unknown_and_invalid_zones_use_the_fallback():
    waves = compute_waves({None: 2, "Mars/Olympus_Mons": 1, "Asia/Kolkata": 1}, at("2026-12-01T00:00:00"),
                          SendAt(time(9, 0), date(2026, 12, 2), "Europe/Paris"), None)
    assert [(w.zones, w.recipients) for w in waves] == [(["Asia/Kolkata"], 1), (["Europe/Paris"], 3)]


def test_quiet_hours_hold_until_the_window_ends_in_that_zone():
    quiet = QuietHours(True, time(21, 0), time(8, 0))
    assert quiet.contains(time(23, 0)) and quiet.contains(time(7, 59)) and not quiet.contains(time(8, 0))
    # 07:00 local is quiet: held until 08:00 that day.
    waves = compute_waves({"Asia/Kolkata": 2, "Europe/London": 1}, at("2026-12-01T00:00:00"),
                          SendAt(time(7, 0), date(2026, 12, 2), "UTC"), quiet)
    assert [(w.due_at, w.reason, w.local_time, w.zones) for w in waves] == [
        (at("2026-12-02T02:30:00"), "quiet", "08:00", ["Asia/Kolkata"]),
        (at("2026-12-02T08:00:00"), "quiet", "08:00", ["Europe/London"])]
    # A send now at 22:00 in London: held until 08:00 the next morning; Tokyo (07:00) until 08:00 today.
    now = at("2026-12-01T22:00:00")
    waves = compute_waves({"Europe/London": 1, "Asia/Tokyo": 1, "America/New_York": 1, None: 4}, now, None, quiet)
    assert waves_by_zone(waves) == {"America/New_York": now, "(unknown)": now,
                                    "Asia/Tokyo": at("2026-12-01T23:00:00"),
                                    "Europe/London": at("2026-12-02T08:00:00")}
    # A window inside one day.
    lunch = QuietHours(True, time(12, 0), time(14, 0))
    assert lunch.release(at("2026-12-01T13:00:00"), "UTC") == at("2026-12-01T14:00:00")
    assert lunch.release(at("2026-12-01T14:00:00"), "UTC") is None


def test_send_at_is_checked_field_by_field():
    now = datetime.now(Z)
    good = {"localTime": "09:00", "date": (now + timedelta(days=1)).date().isoformat(), "fallbackZone": "UTC"}
    assert recipient_time.parse_send_at(good).passed == "next_day"
    for change, field in [({"localTime": "9am"}, "sendAt.localTime"), ({"localTime": "24:00"}, "sendAt.localTime"),
                          ({"date": "2026-13-01"}, "sendAt.date"), ({"date": 20261201}, "sendAt.date"),
                          ({"date": "2020-01-01"}, "sendAt.date"), ({"fallbackZone": ""}, "sendAt.fallbackZone"),
                          ({"fallbackZone": "Europe/Pariss"}, "sendAt.fallbackZone"),
                          ({"passed": "later"}, "sendAt.passed")]:
        with pytest.raises(ValidationError) as err:
            recipient_time.parse_send_at(good | change)
        assert err.value.details[0]["field"] == field, change


def test_a_bad_timezone_cell_is_a_row_error_naming_row_and_column():
    raw = b"userId,timezone\nu1,Asia/Kolkata\nu2,Mars/Base\nu3,\n"
    result = validate_rows(read_csv(raw), [])
    assert result.errors == [{"row": 3, "column": "timezone",
                              "message": '"Mars/Base" is not an IANA time zone name (e.g. Europe/Paris, '
                                         'Asia/Kolkata, UTC)'}]
    assert result.accepted == {"u1": ({"timezone": "Asia/Kolkata"}, None), "u3": ({}, None)}
    assert not result.warnings  # the column is known, not "ignored"


# -- the engine, in process --------------------------------------------------------------------

def _campaign(n: int):
    """A draft with recipients u0..u(n-1); the first call also makes the approved template."""
    if db.session.scalar(select(func.count()).select_from(Template)) == 0:
        return make_campaign(n)
    c = campaigns.create({"name": "C", "templateId": "promo", "variables": {"offer": "10%"}}, ACTOR)
    recipients.add_manual(c.id, [f"u{i}" for i in range(n)], None, ACTOR)
    return db.session.get(Campaign, c.id)


def _zoned_campaign(zones: dict[str, str | None]):
    """Recipients u0.. with zones from the user directory (None: no zone known)."""
    c = _campaign(len(zones))
    users = [f"u{i}" for i in range(len(zones))]
    for user, zone in zip(users, zones.values(), strict=True):
        row = db.session.get(User, user) or User(user_id=user)
        row.timezone = zone
        db.session.add(row)
    db.session.commit()
    return c, dict(zip(users, zones.keys(), strict=True))


def _send_at(local: datetime, zone: str, passed: str = "next_day") -> control.SendOptions:
    return control.SendOptions(send_at=SendAt(local.time().replace(second=0, microsecond=0), local.date(),
                                              zone, passed))


def test_a_local_time_send_is_scheduled_for_its_first_wave_and_unschedule_forgets_the_waves(app):
    c, _ = _zoned_campaign({"a": "Asia/Kolkata", "b": "Asia/Kathmandu", "c": "America/New_York", "d": None,
                            "e": "Europe/Paris", "f": "Pacific/Chatham"})
    day = (datetime.now(Z) + timedelta(days=3)).date()
    sent = lifecycle.send(c.id, None, ACTOR, options=control.SendOptions(send_at=SendAt(time(9, 0), day,
                                                                                         "Europe/London")))
    assert sent.status == "scheduled" and sent.wave_count == 6
    waves = db.session.scalars(select(CampaignWave).where(CampaignWave.campaign_id == c.id)
                               .order_by(CampaignWave.number)).all()
    assert sent.scheduled_at == waves[0].due_at == local_instant(day, time(9, 0), "Pacific/Chatham")
    rows = dict(db.session.execute(select(Recipient.user_id, Recipient.wave)
                                   .where(Recipient.campaign_id == c.id)).all())
    by_number = {w.number: w for w in waves}
    assert by_number[rows["u1"]].zones == ["Asia/Kathmandu"]
    assert by_number[rows["u3"]].zones == ["Europe/London"]  # no zone known: the fallback
    assert sent.send_at == {"localTime": "09:00", "date": day.isoformat(), "fallbackZone": "Europe/London",
                            "passed": "next_day"}
    view = recipient_time.waves_view(sent, datetime.now(Z))
    assert [w["status"] for w in view] == ["waiting"] * 6
    lifecycle.unschedule(c.id, ACTOR)
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.wave_count, c.send_at, c.scheduled_at) == ("draft", 0, None, None)
    assert db.session.scalar(select(func.count()).select_from(CampaignWave)) == 0
    assert db.session.scalar(select(func.count()).select_from(Recipient).where(Recipient.wave.is_not(None))) == 0


def test_a_wave_due_now_is_sent_and_later_waves_wait_for_their_time_then_cancel_skips_them(app):
    now = datetime.now(Z)
    tokyo_now = now.astimezone(recipient_time._zone("Asia/Tokyo"))
    # 09:00-ish now in Tokyo has passed (a minute ago): "now" sends Tokyo at once; London is hours away.
    local = (tokyo_now - timedelta(minutes=1)).replace(tzinfo=None)
    zones = {"t1": "Asia/Tokyo", "t2": "Asia/Tokyo", "l1": "America/Los_Angeles", "l2": "America/Los_Angeles",
             "x": "Pacific/Kiritimati"}
    c, _ = _zoned_campaign(zones)
    sent = lifecycle.send(c.id, None, ACTOR, options=_send_at(local, "Asia/Tokyo", passed="now"))
    assert sent.status == "sending"  # the first wave is due now
    drain()
    c = assert_counters_match_rows(c.id)
    assert c.status == "sending" and c.sent >= 2 and c.pending >= 1
    delivered = set(db.session.scalars(select(Notification.user_id)).all())
    assert {"u0", "u1"} <= delivered
    future = db.session.scalars(select(CampaignChunk).where(CampaignChunk.campaign_id == c.id,
                                                            CampaignChunk.done.is_(False))).all()
    assert future and all(ch.enqueued_at > datetime.now(Z) for ch in future)
    view = recipient_time.waves_view(c, datetime.now(Z))
    assert view[0]["status"] == "done" and "waiting" in {w["status"] for w in view[1:]}
    lifecycle.cancel(c.id, ACTOR)
    drain()
    c = assert_counters_match_rows(c.id)
    assert c.status == "cancelled" and c.skipped == c.total - c.sent and c.pending == 0
    assert {w["status"] for w in recipient_time.waves_view(c, datetime.now(Z))[1:]} == {"cancelled"}


def test_pause_and_resume_keep_a_future_wave_at_its_time(app):
    now = datetime.now(Z)
    local = (now - timedelta(minutes=1)).replace(tzinfo=None)
    c, _ = _zoned_campaign({"a": "UTC", "b": "Asia/Tokyo", "c": "America/Los_Angeles"})
    lifecycle.send(c.id, None, ACTOR, options=_send_at(local, "UTC", passed="now"))
    drain()
    control.pause(c.id, ACTOR)
    control.resume(c.id, ACTOR)
    drain()
    c = assert_counters_match_rows(c.id)
    open_chunks = db.session.scalars(select(CampaignChunk).where(CampaignChunk.campaign_id == c.id,
                                                                 CampaignChunk.done.is_(False))).all()
    assert c.status == "sending" and c.sent >= 1 and c.pending >= 1
    assert open_chunks and all(ch.enqueued_at > datetime.now(Z) + timedelta(minutes=30) for ch in open_chunks)


def test_quiet_hours_hold_recipients_inside_the_window_and_ignore_sends_all(app):
    now = datetime.now(Z)
    start, end = (now - timedelta(minutes=30)).strftime("%H:%M"), (now + timedelta(minutes=30)).strftime("%H:%M")
    workspace.set_quiet_hours(True, start, end, ACTOR)
    utc_offset_far = "Asia/Kolkata" if not (time(0) <= now.time() < time(1)) else "America/New_York"
    c, _ = _zoned_campaign({"q1": "UTC", "q2": "Etc/UTC", "ok": utc_offset_far, "unknown": None})
    lifecycle.send(c.id, None, ACTOR)
    drain()
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.sent, c.pending) == ("sending", 2, 2)
    view = recipient_time.waves_view(c, datetime.now(Z))
    held = [w for w in view if w["reason"] == "quiet"]
    assert [(w["zones"], w["recipients"], w["status"]) for w in held] == [(["Etc/UTC", "UTC"], 2, "held")]
    assert held[0]["dueAt"].strftime("%H:%M") == end
    # An urgent campaign ignores them.
    c2, _ = _zoned_campaign({"q1": "UTC"})
    lifecycle.send(c2.id, None, ACTOR, options=control.SendOptions(ignore_quiet_hours=True))
    drain()
    assert assert_counters_match_rows(c2.id).status == "sent"


def test_a_frequency_cap_skips_recipients_over_it_with_the_reason(app):
    get_redis().delete(*get_redis().keys("herald:fcap:*") or ["none"])
    workspace.set_frequency_caps([{"channel": "all", "limit": 1, "window": "24h"}], ACTOR)
    first = _campaign(10)
    lifecycle.send(first.id, None, ACTOR)
    drain()
    assert assert_counters_match_rows(first.id).sent == 10
    second = _campaign(15)  # u0..u14: u0..u9 already had one message today
    lifecycle.send(second.id, None, ACTOR)
    drain()
    second = assert_counters_match_rows(second.id)
    assert (second.status, second.sent, second.skipped) == ("sent", 5, 10)
    reasons = set(db.session.scalars(select(Recipient.last_error).where(Recipient.campaign_id == second.id,
                                                                        Recipient.status == "skipped")))
    assert reasons == {"frequency cap: 1 in the last 24 h"}
    # Exempt: a campaign sent with ignoreFrequencyCap, and a test send.
    third = _campaign(3)
    lifecycle.send(third.id, None, ACTOR, options=control.SendOptions(ignore_frequency_cap=True))
    drain()
    assert assert_counters_match_rows(third.id).sent == 3
    per_user = dict(db.session.execute(select(Recipient.user_id, func.count()).where(
        Recipient.status == "sent", Recipient.campaign_id.in_([first.id, second.id]))
        .group_by(Recipient.user_id)).all())
    assert max(per_user.values()) == 1


def test_send_now_on_a_scheduled_local_time_send_sends_everyone_at_once(app):
    c, _ = _zoned_campaign({"a": "Asia/Kolkata", "b": "America/New_York"})
    day = (datetime.now(Z) + timedelta(days=2)).date()
    lifecycle.send(c.id, None, ACTOR, options=control.SendOptions(send_at=SendAt(time(9, 0), day, "UTC")))
    sent = lifecycle.send(c.id, None, ACTOR)
    assert (sent.status, sent.wave_count, sent.send_at) == ("sending", 0, None)
    drain()
    assert assert_counters_match_rows(c.id).status == "sent"


def test_a_canary_is_drawn_outside_quiet_hours_or_waits_for_them_to_end(app):
    now = datetime.now(Z)
    start, end = (now - timedelta(minutes=30)).strftime("%H:%M"), (now + timedelta(minutes=30)).strftime("%H:%M")
    workspace.set_quiet_hours(True, start, end, ACTOR)
    awake = "Asia/Kolkata" if not (time(0) <= now.time() < time(1)) else "America/New_York"
    zones = {f"q{i}": "UTC" for i in range(40)} | {f"a{i}": awake for i in range(10)}
    c, users = _zoned_campaign(zones)
    lifecycle.send(c.id, None, ACTOR, options=control.parse_options({"canary": {"size": 5}}))
    drain()
    c = assert_counters_match_rows(c.id)
    sampled = db.session.scalars(select(Recipient.user_id).where(Recipient.campaign_id == c.id,
                                                                 Recipient.wave == 1)).all()
    assert len(sampled) == 5 and all(users[u].startswith("a") for u in sampled)
    assert (c.status, c.canary_state, c.sent) == ("paused", "held", 5)
    # Everyone inside quiet hours: the first wave waits until the window ends.
    c2, _ = _zoned_campaign({f"q{i}": "UTC" for i in range(20)})
    lifecycle.send(c2.id, None, ACTOR, options=control.parse_options({"canary": {"size": 3}}))
    drain()
    c2 = assert_counters_match_rows(c2.id)
    chunk = db.session.scalars(select(CampaignChunk).where(CampaignChunk.campaign_id == c2.id)).one()
    assert (c2.status, c2.sent, chunk.wave) == ("sending", 0, 1)
    assert chunk.enqueued_at.strftime("%H:%M") == end
