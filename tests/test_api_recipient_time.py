"""Recipient time over the API (issue 15, SPEC §10): a local-time send (`sendAt`) planned as
waves per UTC instant and shown on the campaign, unschedule and cancel with waves pending, quiet
hours and frequency caps as workspace settings, the one-call flags, and every refused `sendAt`.
Real Redis and database; jobs run by tests.engine.drain."""

from __future__ import annotations

import io
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from dashboard.extensions import db
from dashboard.models import AuditEvent, Campaign, CampaignWave, Recipient, utcnow
from dashboard.services import workspace
from tests.engine import drain
from tests.test_api_campaigns import make_template
from tests.test_delivery_faults import assert_counters_match_rows

# userId -> zone from the user directory; u-csv's zone comes from the CSV (it overrides the
# directory's), u-none has none anywhere (the fallback zone).
DIRECTORY = {"u-kol": "Asia/Kolkata", "u-ktm": "Asia/Kathmandu", "u-ny": "America/New_York",
             "u-ber": "Europe/Berlin", "u-syd": "Australia/Sydney", "u-tok": "Asia/Tokyo",
             "u-csv": "America/Los_Angeles", "u-none": None}
CSV = ("userId,offer,timezone\n"
       "u-kol,5%,\nu-ktm,5%,\nu-ny,5%,\nu-ber,5%,\nu-syd,5%,\nu-tok,5%,\n"
       "u-csv,5%,America/Sao_Paulo\nu-none,5%,\nu-ber2,5%,Europe/Berlin\n")
FALLBACK = "Europe/Paris"


def _h(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def _expected(day, hh: int, mm: int, zone: str) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=ZoneInfo(zone)).astimezone(UTC)


@pytest.fixture
def draft(api):
    """A draft with the nine CSV recipients; zones in the directory and the CSV's column."""
    make_template()
    users = [{"userId": u, "name": u, "timezone": z} for u, z in DIRECTORY.items()]
    assert api("POST", "/users", {"users": users}).status_code == 200
    created = api("POST", "/campaigns", {"name": "Local", "templateId": "promo"})
    cid = created.get_json()["id"]
    uploaded = _upload(api, cid, CSV)
    assert uploaded.status_code == 200, uploaded.get_json()
    assert uploaded.get_json()["imported"] == 9
    return cid


def _upload(api, cid: int, text: str):
    return api("POST", f"/campaigns/{cid}/recipients/upload", None, data={"file": (io.BytesIO(text.encode()), "r.csv")})


def _waves_in_db(cid: int) -> int:
    return db.session.scalar(select(func.count()).select_from(CampaignWave).where(CampaignWave.campaign_id == cid))


def _recipients_with_a_wave(cid: int) -> int:
    return db.session.scalar(select(func.count()).select_from(Recipient).where(
        Recipient.campaign_id == cid, Recipient.wave.is_not(None)))


def test_a_local_time_send_in_eight_zones_is_scheduled_as_waves_per_utc_instant(api, draft):
    day = (utcnow() + timedelta(days=7)).date()
    send_at = {"localTime": "09:00", "date": day.isoformat(), "fallbackZone": FALLBACK, "passed": "next_day"}
    sent = api("POST", f"/campaigns/{draft}/send", {"sendAt": send_at})
    assert sent.status_code == 202, sent.get_json()
    body = sent.get_json()
    assert body["status"] == "scheduled"
    assert body["sendAt"] == send_at
    assert (body["ignoreQuietHours"], body["ignoreFrequencyCap"]) == (False, False)

    # SPEC §10: CSV column -> directory -> fallback. Berlin and Paris share an instant: one wave.
    zones = {"Asia/Kolkata": 1, "Asia/Kathmandu": 1, "America/New_York": 1, "Europe/Berlin": 2,
             "Australia/Sydney": 1, "Asia/Tokyo": 1, "America/Sao_Paulo": 1, FALLBACK: 1}
    expected: dict[datetime, dict] = {}
    for zone, count in zones.items():
        wave = expected.setdefault(_expected(day, 9, 0, zone), {"zones": [], "recipients": 0})
        wave["zones"].append(zone)
        wave["recipients"] += count
    waves = body["waves"]
    assert [_at(w["dueAt"]) for w in waves] == sorted(expected)
    assert len(waves) == 7  # eight zones, Berlin and Paris at the same instant
    for wave in waves:
        assert wave["zones"] == sorted(expected[_at(wave["dueAt"])]["zones"])
        assert wave["recipients"] == expected[_at(wave["dueAt"])]["recipients"]
        assert (wave["localTime"], wave["reason"], wave["status"]) == ("09:00", "local", "waiting")
    assert [w["number"] for w in waves] == list(range(2, 9))
    by_zone = {z: _at(w["dueAt"]) for w in waves for z in w["zones"]}
    assert by_zone["Asia/Kolkata"] == datetime.combine(day, time(3, 30), tzinfo=UTC)  # +05:30
    assert by_zone["Asia/Kathmandu"] == datetime.combine(day, time(3, 15), tzinfo=UTC)  # +05:45
    assert by_zone["Asia/Tokyo"] == datetime.combine(day, time(0, 0), tzinfo=UTC)
    first = min(expected)
    assert _at(body["scheduledAt"]) == first and _at(body["nextWaveAt"]) == first
    assert sum(w["recipients"] for w in waves) == 9 == _recipients_with_a_wave(draft)

    read = api("GET", f"/campaigns/{draft}").get_json()
    assert read["waves"] == waves and read["nextWaveAt"] == body["nextWaveAt"]
    listed = api("GET", "/campaigns?status=scheduled").get_json()["items"]
    assert [c["id"] for c in listed] == [draft]
    assert listed[0]["waves"] is None and listed[0]["nextWaveAt"] is None  # lists stay cheap
    assert listed[0]["sendAt"] == send_at
    drain()  # nothing is due for days
    assert api("GET", f"/campaigns/{draft}").get_json()["status"] == "scheduled"
    assert_counters_match_rows(draft)


def test_unschedule_forgets_the_waves_and_the_draft_can_be_sent_normally(api, draft):
    day = (utcnow() + timedelta(days=3)).date()
    send_at = {"localTime": "18:30", "date": day.isoformat(), "fallbackZone": "UTC"}
    assert api("POST", f"/campaigns/{draft}/send", {"sendAt": send_at}).get_json()["status"] == "scheduled"
    assert _waves_in_db(draft) == 8  # fallback UTC is its own instant

    back = api("POST", f"/campaigns/{draft}/unschedule")
    assert back.status_code == 200, back.get_json()
    body = back.get_json()
    assert (body["status"], body["sendAt"], body["waves"], body["nextWaveAt"], body["scheduledAt"]) == (
        "draft", None, [], None, None)
    assert _waves_in_db(draft) == 0 and _recipients_with_a_wave(draft) == 0
    assert api("GET", f"/campaigns/{draft}").get_json()["waves"] == []

    now = api("POST", f"/campaigns/{draft}/send")
    assert now.status_code == 202 and now.get_json()["status"] == "sending" and now.get_json()["waves"] == []
    drain()
    c = assert_counters_match_rows(draft)
    assert (c.status, c.sent) == ("sent", 9)


def test_cancel_with_waves_pending_skips_every_recipient(api, draft):
    day = (utcnow() + timedelta(days=2)).date()
    sent = api("POST", f"/campaigns/{draft}/send",
               {"sendAt": {"localTime": "07:45", "date": day.isoformat(), "fallbackZone": FALLBACK}})
    assert sent.get_json()["status"] == "scheduled"
    cancelled = api("POST", f"/campaigns/{draft}/cancel")
    assert cancelled.status_code == 200, cancelled.get_json()
    body = cancelled.get_json()
    assert body["status"] == "cancelled" and body["nextWaveAt"] is None
    assert {w["status"] for w in body["waves"]} == {"cancelled"} and len(body["waves"]) == 7
    assert body["counts"] == {"total": 9, "pending": 0, "sent": 0, "failed": 0, "skipped": 9}
    drain()  # the waves' scheduled jobs find the campaign cancelled
    c = assert_counters_match_rows(draft)
    assert (c.status, c.skipped, c.sent) == ("cancelled", 9, 0)
    statuses = {r["status"] for r in api("GET", f"/campaigns/{draft}/recipients").get_json()["items"]}
    assert statuses == {"skipped"}


def test_passed_next_day_and_now(api, draft):
    """Local time already passed: next_day -> the same time tomorrow; now -> one wave at once."""
    soon = (utcnow() + timedelta(hours=2)).replace(second=0, microsecond=0)
    yesterday = soon.date() - timedelta(days=1)  # that day's time has passed in UTC, tomorrow's is `soon`
    only_utc = "userId,offer\nz1,5%\nz2,5%\n"
    created = api("POST", "/campaigns", {"name": "Passed", "templateId": "promo"}).get_json()["id"]
    assert _upload(api, created, only_utc).status_code == 200
    send_at = {"localTime": soon.strftime("%H:%M"), "date": yesterday.isoformat(), "fallbackZone": "UTC",
               "passed": "next_day"}
    body = api("POST", f"/campaigns/{created}/send", {"sendAt": send_at}).get_json()
    assert body["status"] == "scheduled"
    assert [(_at(w["dueAt"]), w["reason"], w["recipients"]) for w in body["waves"]] == [(soon, "local", 2)]

    body = api("POST", f"/campaigns/{draft}/send", {"sendAt": {**send_at, "passed": "now"}}).get_json()
    assert body["status"] == "sending", body  # every zone's time passed yesterday: one wave, now
    assert [(w["reason"], w["recipients"], w["localTime"]) for w in body["waves"]] == [
        ("passed", 9, send_at["localTime"])]
    drain()
    c = assert_counters_match_rows(draft)
    assert (c.status, c.sent) == ("sent", 9)
    assert [w["status"] for w in api("GET", f"/campaigns/{draft}").get_json()["waves"]] == ["done"]


def test_quiet_hours_hold_a_local_time_send_unless_the_campaign_ignores_them(api, draft, client, api_key):
    admin = _h(api_key("admin"))
    saved = client.put("/api/v1/settings/quiet-hours", headers=admin,
                       json={"enabled": True, "start": "07:00", "end": "09:30"})
    assert saved.status_code == 200, saved.get_json()
    day = (utcnow() + timedelta(days=5)).date()
    send_at = {"localTime": "09:00", "date": day.isoformat(), "fallbackZone": FALLBACK}
    body = api("POST", f"/campaigns/{draft}/send", {"sendAt": send_at}).get_json()
    assert body["status"] == "scheduled" and len(body["waves"]) == 7
    for wave in body["waves"]:  # 09:00 is inside 07:00-09:30 everywhere: held until 09:30 local
        assert (wave["reason"], wave["localTime"], wave["status"]) == ("quiet", "09:30", "held")
    kolkata = next(w for w in body["waves"] if w["zones"] == ["Asia/Kolkata"])
    assert _at(kolkata["dueAt"]) == datetime.combine(day, time(4, 0), tzinfo=UTC)

    api("POST", f"/campaigns/{draft}/unschedule")
    body = api("POST", f"/campaigns/{draft}/send", {"sendAt": send_at, "ignoreQuietHours": True}).get_json()
    assert body["ignoreQuietHours"] is True and body["ignoreFrequencyCap"] is False
    assert {(w["reason"], w["localTime"], w["status"]) for w in body["waves"]} == {("local", "09:00", "waiting")}


def test_frequency_cap_skips_the_second_campaign_with_the_reason(api, client, api_key):
    make_template()
    admin = _h(api_key("admin"))
    assert client.put("/api/v1/settings/frequency-caps", headers=admin,
                      json={"rules": [{"channel": "all", "limit": 1, "window": "24h"}]}).status_code == 200
    ids = []
    for name in ("First", "Second", "Urgent"):
        cid = api("POST", "/campaigns", {"name": name, "templateId": "promo", "variables": {"offer": "5%"}}
                  ).get_json()["id"]
        api("POST", f"/campaigns/{cid}/recipients", {"userIds": ["a", "b", "c"]})
        ids.append(cid)
    first, second, urgent = ids
    assert api("POST", f"/campaigns/{first}/send").status_code == 202
    drain()
    assert api("POST", f"/campaigns/{second}/send").status_code == 202
    drain()
    assert api("POST", f"/campaigns/{urgent}/send", {"ignoreFrequencyCap": True}).get_json()["ignoreFrequencyCap"]
    drain()
    assert (assert_counters_match_rows(first).sent, assert_counters_match_rows(urgent).sent) == (3, 3)
    c = assert_counters_match_rows(second)
    assert (c.status, c.sent, c.skipped) == ("sent", 0, 3)
    items = api("GET", f"/campaigns/{second}/recipients").get_json()["items"]
    assert {(r["status"], r["lastError"]) for r in items} == {("skipped", "frequency cap: 1 in the last 24 h")}


def test_quiet_hours_setting_round_trip_roles_and_validation(client, api_key):
    admin, marketer = _h(api_key("admin")), _h(api_key("marketer"))
    url = "/api/v1/settings/quiet-hours"
    assert client.get(url, headers=admin).get_json() == {"enabled": False, "start": "21:00", "end": "08:00"}
    for method in ("GET", "PUT"):
        response = client.open(url, method=method, headers=marketer, json={"enabled": True, "start": "22:00",
                                                                          "end": "07:00"})
        assert response.status_code == 403 and response.get_json()["error"]["code"] == "forbidden"
    for bad, field in (({"enabled": "yes", "start": "22:00", "end": "07:00"}, "enabled"),
                       ({"start": "22:00", "end": "07:00"}, "enabled"),
                       ({"enabled": True, "end": "07:00"}, "start"),
                       ({"enabled": True, "start": "22:00"}, "end"),
                       ({"enabled": True, "start": "25:00", "end": "07:00"}, "start"),
                       ({"enabled": True, "start": "22:00", "end": "7:00"}, "end"),
                       ({"enabled": True, "start": 2200, "end": "07:00"}, "start"),
                       ({"enabled": True, "start": ["22:00"], "end": "07:00"}, "start"),
                       ({"enabled": True, "start": "22:00", "end": "22:00"}, "end")):
        response = client.put(url, headers=admin, json=bad)
        assert response.status_code == 400, (bad, response.get_json())
        assert response.get_json()["error"]["details"][0]["field"] == field, bad
    assert client.put(url, headers=admin, json=[1]).status_code == 400
    saved = client.put(url, headers=admin, json={"enabled": True, "start": "22:00", "end": "07:30"})
    assert saved.status_code == 200 and saved.get_json() == {"enabled": True, "start": "22:00", "end": "07:30"}
    assert client.get(url, headers=admin).get_json() == {"enabled": True, "start": "22:00", "end": "07:30"}
    assert workspace.quiet_hours().as_json() == {"enabled": True, "start": "22:00", "end": "07:30"}
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "workspace.quiet_hours")).one()
    assert event.details["after"] == {"enabled": True, "start": "22:00", "end": "07:30"}
    assert event.details["before"] == {"enabled": False, "start": "21:00", "end": "08:00"}


def test_frequency_caps_setting_round_trip_roles_and_validation(client, api_key):
    admin, support = _h(api_key("admin")), _h(api_key("support"))
    url = "/api/v1/settings/frequency-caps"
    assert client.get(url, headers=admin).get_json() == {"rules": []}
    for method in ("GET", "PUT"):
        assert client.open(url, method=method, headers=support, json={"rules": []}).status_code == 403
    rule = {"channel": "all", "limit": 3, "window": "24h"}
    for bad, field in (({}, "rules"), ({"rules": None}, "rules"), ({"rules": "3 a day"}, "rules"),
                       ({"rules": [rule] * 9}, "rules"), ({"rules": [3]}, "rules[0]"),
                       ({"rules": [{**rule, "channel": "sms"}]}, "rules[0].channel"),
                       ({"rules": [{**rule, "channel": ["all"]}]}, "rules[0].channel"),
                       ({"rules": [{**rule, "limit": 0}]}, "rules[0].limit"),
                       ({"rules": [{**rule, "limit": 1001}]}, "rules[0].limit"),
                       ({"rules": [{**rule, "limit": 2.5}]}, "rules[0].limit"),
                       ({"rules": [{**rule, "limit": True}]}, "rules[0].limit"),
                       ({"rules": [{**rule, "limit": "3"}]}, "rules[0].limit"),
                       ({"rules": [{**rule, "window": "1h"}]}, "rules[0].window"),
                       ({"rules": [{**rule, "window": ["24h"]}]}, "rules[0].window"),
                       ({"rules": [{**rule, "window": {"hours": 24}}]}, "rules[0].window"),
                       ({"rules": [rule, {**rule, "limit": 5}]}, "rules[1]")):
        response = client.put(url, headers=admin, json=bad)
        assert response.status_code == 400, (bad, response.status_code)
        assert response.get_json()["error"]["details"][0]["field"] == field, bad
    rules = [rule, {"channel": "email", "limit": 2.0, "window": "7d"}, {"limit": 10, "window": "7d"}]
    saved = client.put(url, headers=admin, json={"rules": rules})
    assert saved.status_code == 200, saved.get_json()
    stored = [rule, {"channel": "email", "limit": 2, "window": "7d"}, {"channel": "all", "limit": 10, "window": "7d"}]
    assert saved.get_json() == {"rules": stored}
    assert client.get(url, headers=admin).get_json() == {"rules": stored}
    assert [r.reason() for r in workspace.frequency_caps()] == [
        "frequency cap: 3 in the last 24 h", "frequency cap: 2 email in the last 7 days",
        "frequency cap: 10 in the last 7 days"]
    assert client.put(url, headers=admin, json={"rules": []}).get_json() == {"rules": []}
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "workspace.frequency_caps")) == 2


def test_one_call_notifications_are_exempt_unless_they_ask(api):
    make_template()
    body = {"templateId": "promo", "targets": ["a", "b"], "variables": {"offer": "5%"}}
    plain = api("POST", "/notifications", body)
    asked = api("POST", "/notifications", {**body, "quietHours": True, "frequencyCap": True})
    nulls = api("POST", "/notifications", {**body, "quietHours": None, "frequencyCap": False})
    assert [r.status_code for r in (plain, asked, nulls)] == [202, 202, 202]
    flags = {cid: (db.session.get(Campaign, cid).quiet_hours, db.session.get(Campaign, cid).frequency_cap)
             for cid in (plain.get_json()["id"], asked.get_json()["id"], nulls.get_json()["id"])}
    assert list(flags.values()) == [(False, False), (True, True), (False, False)]
    read = api("GET", f"/campaigns/{asked.get_json()['id']}").get_json()
    assert (read["ignoreQuietHours"], read["ignoreFrequencyCap"]) == (False, False)
    read = api("GET", f"/campaigns/{plain.get_json()['id']}").get_json()
    assert (read["ignoreQuietHours"], read["ignoreFrequencyCap"]) == (True, True)
    for name, value in (("quietHours", "yes"), ("frequencyCap", 1), ("quietHours", [True])):
        refused = api("POST", "/notifications", {**body, name: value})
        assert refused.status_code == 400 and refused.get_json()["error"]["details"][0]["field"] == name
    assert db.session.scalar(select(func.count()).select_from(Campaign)) == 3  # nothing sent by the refusals
    drain()


DAY = (datetime.now(UTC) + timedelta(days=4)).date().isoformat()
GOOD = {"localTime": "09:00", "date": DAY, "fallbackZone": "Europe/Paris", "passed": "next_day"}
BAD_SEND_AT = [
    ({"sendAt": "tomorrow 9am"}, "sendAt"),
    ({"sendAt": ["09:00"]}, "sendAt"),
    ({"sendAt": 9}, "sendAt"),
    ({"sendAt": {**GOOD, "localTime": 900}}, "sendAt.localTime"),
    ({"sendAt": {**GOOD, "localTime": "9:00"}}, "sendAt.localTime"),
    ({"sendAt": {**GOOD, "localTime": "24:00"}}, "sendAt.localTime"),
    ({"sendAt": {**GOOD, "localTime": "09:60"}}, "sendAt.localTime"),
    ({"sendAt": {**GOOD, "localTime": "09:00:00"}}, "sendAt.localTime"),
    ({"sendAt": {k: v for k, v in GOOD.items() if k != "localTime"}}, "sendAt.localTime"),
    ({"sendAt": {**GOOD, "date": "2026-13-01"}}, "sendAt.date"),
    ({"sendAt": {**GOOD, "date": "2026-02-30"}}, "sendAt.date"),
    ({"sendAt": {**GOOD, "date": "02/12/2026"}}, "sendAt.date"),
    ({"sendAt": {**GOOD, "date": 20261202}}, "sendAt.date"),
    ({"sendAt": {**GOOD, "date": None}}, "sendAt.date"),
    ({"sendAt": {**GOOD, "date": "2001-12-02"}}, "sendAt.date"),
    ({"sendAt": {**GOOD, "date": (datetime.now(UTC) + timedelta(days=400)).date().isoformat()}}, "sendAt.date"),
    ({"sendAt": {k: v for k, v in GOOD.items() if k != "fallbackZone"}}, "sendAt.fallbackZone"),
    ({"sendAt": {**GOOD, "fallbackZone": ""}}, "sendAt.fallbackZone"),
    ({"sendAt": {**GOOD, "fallbackZone": "Mars/Olympus_Mons"}}, "sendAt.fallbackZone"),
    ({"sendAt": {**GOOD, "fallbackZone": "+05:30"}}, "sendAt.fallbackZone"),
    ({"sendAt": {**GOOD, "fallbackZone": ["UTC"]}}, "sendAt.fallbackZone"),
    ({"sendAt": {**GOOD, "passed": "later"}}, "sendAt.passed"),
    ({"sendAt": {**GOOD, "passed": None}}, "sendAt.passed"),
    ({"sendAt": {**GOOD, "passed": ["now"]}}, "sendAt.passed"),
    ({"sendAt": GOOD, "scheduledAt": (datetime.now(UTC) + timedelta(days=1)).isoformat()}, "sendAt"),
    ({"sendAt": GOOD, "canary": {"size": 2}}, "sendAt"),
    ({"sendAt": GOOD, "spreadMinutes": 60}, "sendAt"),
    ({"ignoreQuietHours": "yes"}, "ignoreQuietHours"),
    ({"ignoreFrequencyCap": 1}, "ignoreFrequencyCap"),
    ({"sendAt": GOOD, "ignoreQuietHours": [True]}, "ignoreQuietHours"),
]


@pytest.mark.parametrize(("body", "field"), BAD_SEND_AT, ids=[f"{i}-{f}" for i, (_, f) in enumerate(BAD_SEND_AT)])
def test_bad_send_options_are_400_naming_the_field_and_the_draft_stays(api, body, field):
    make_template()
    cid = api("POST", "/campaigns", {"name": "Bad", "templateId": "promo", "variables": {"offer": "5%"}}
              ).get_json()["id"]
    api("POST", f"/campaigns/{cid}/recipients", {"userIds": ["a", "b", "c", "d"]})
    response = api("POST", f"/campaigns/{cid}/send", body)
    assert response.status_code == 400, (body, response.status_code, response.get_json())
    error = response.get_json()["error"]
    assert error["code"] == "validation_error" and error["details"][0]["field"] == field, error
    assert field.split(".")[-1] in error["message"]  # the sentence names the field too
    read = api("GET", f"/campaigns/{cid}").get_json()
    assert (read["status"], read["sendAt"], read["waves"]) == ("draft", None, [])
    assert _waves_in_db(cid) == 0 and _recipients_with_a_wave(cid) == 0


def test_recipient_time_options_on_a_scheduled_campaign_are_a_conflict(api, draft):
    when = (utcnow() + timedelta(days=1)).isoformat()
    assert api("POST", f"/campaigns/{draft}/send", {"scheduledAt": when}).get_json()["status"] == "scheduled"
    for body in ({"sendAt": GOOD}, {"ignoreQuietHours": True}, {"ignoreFrequencyCap": True}):
        refused = api("POST", f"/campaigns/{draft}/send", body)
        assert refused.status_code == 409 and "scheduled" in refused.get_json()["error"]["message"], body
    # false is the default, so it is no option: sending the scheduled campaign now is allowed
    now = api("POST", f"/campaigns/{draft}/send", {"ignoreQuietHours": False})
    assert now.status_code == 202 and now.get_json()["status"] == "sending"
    drain()
    assert assert_counters_match_rows(draft).sent == 9


def test_a_zone_in_the_csv_that_is_not_iana_is_a_row_error(api):
    make_template()
    cid = api("POST", "/campaigns", {"name": "Z", "templateId": "promo"}).get_json()["id"]
    bad = "userId,offer,timezone\nu1,5%,Europe/Paris\nu2,5%,Moon/Crater\n"
    response = _upload(api, cid, bad)
    assert response.status_code == 400, response.get_json()
    details = response.get_json()["error"]["details"]
    assert details[0]["row"] == 3 and details[0]["column"] == "timezone" and "Moon/Crater" in details[0]["message"]
