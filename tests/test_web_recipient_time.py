"""Recipient time in the dashboard (issue 15), through the test client with real Redis and the
real database: Review & send's "at a time in each recipient's time zone" (refusals shown next to
their fields in the API's words, a send that becomes a scheduled campaign with waves), the live
page's Waves panel, the Workspace page's quiet hours and frequency caps, a skipped recipient's
cap reason, a CSV's bad timezone cell in the upload preview, CSRF and roles."""

from __future__ import annotations

import html as htmllib
import re
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from dashboard.extensions import db
from dashboard.models import AuditEvent, Campaign, CampaignWave, User
from dashboard.services import lifecycle, recipients, workspace
from dashboard.services.actor import Actor
from tests.conftest import csrf_from
from tests.engine import drain
from tests.test_delivery_faults import assert_counters_match_rows
from tests.test_sending import make_campaign

ACTOR = Actor.system("test")
DEFAULTS = {"advanced": "1", "canary": "off", "canary_size": "", "canary_percent": "", "hold_minutes": "",
            "halt": "canary", "halt_percent": "5", "halt_window": "200", "spread_minutes": "",
            "local_time": "09:00", "local_date": "", "fallback_zone": "Europe/Paris", "passed": "next_day",
            "intent": "local"}
ZONES = {"u0": "Asia/Kolkata", "u1": "Asia/Kathmandu", "u2": "America/New_York", "u3": None,
         "u4": "Asia/Tokyo", "u5": "Asia/Kolkata"}


def _page(client, path: str) -> str:
    return client.get(path).get_data(as_text=True)


def _text(page: str) -> str:
    """The page as a reader sees it: tags dropped, entities decoded, whitespace collapsed."""
    return re.sub(r"\s+", " ", htmllib.unescape(re.sub(r"<[^>]+>", " ", page)))


def _fresh(cid: int) -> Campaign:
    db.session.expire_all()
    return db.session.get(Campaign, cid)


def _zoned(zones: dict[str, str | None] = ZONES) -> Campaign:
    c = make_campaign(len(zones))
    for user, zone in zones.items():
        db.session.add(User(user_id=user, timezone=zone))
    db.session.commit()
    return c


def _send(client, cid: int, **fields):
    token = csrf_from(_page(client, f"/campaigns/{cid}"))
    return client.post(f"/campaigns/{cid}/send", data={"csrf_token": token, **(DEFAULTS | fields)})


def _logout(client) -> None:
    client.post("/logout", data={"csrf_token": csrf_from(_page(client, "/"))})


def _field_error(page: str, field_id: str) -> str:
    match = re.search(rf'<p class="field-error" id="{field_id}-error">(.*?)</p>', page, re.S)
    assert match, f"no error shown next to {field_id}"
    return htmllib.unescape(match.group(1))


def test_the_local_time_option_is_on_review_and_send_with_its_explanation(client, logged_in):
    c = _zoned()
    logged_in("marketer")
    page = _page(client, f"/campaigns/{c.id}")
    text = _text(page)
    assert 'id="local-time"' in page and "At a time in each recipient's time zone" in text
    assert 'name="local_time" type="time" value="09:00"' in page and 'name="local_date" type="date"' in page
    assert '<select id="fallback_zone" name="fallback_zone">' in page
    assert "If the time has already passed for some recipients" in text
    assert "Send it the next day at that time" in text and "Send it to them now" in text
    assert "Each recipient gets it at 09:00 in their own time zone on" in text
    assert "the send goes out in waves, one per distinct time, over up to ~26 hours" in text
    assert "Ignore quiet hours (urgent)" in text and "Ignore frequency caps" in text
    assert "Quiet hours are off in this workspace." in text and "No frequency caps in this workspace." in text
    # The workspace's rules are named beside the checkboxes once set.
    workspace.set_quiet_hours(True, "21:00", "08:00", ACTOR)
    workspace.set_frequency_caps([{"channel": "all", "limit": 3, "window": "24h"},
                                  {"channel": "email", "limit": 2, "window": "7d"}], ACTOR)
    text = _text(_page(client, f"/campaigns/{c.id}"))
    assert "Quiet hours are 21:00–08:00 in each recipient's time zone" in text
    assert "Caps: 3 per 24 h; 2 email per 7 days." in text


def test_refused_local_time_sends_show_each_problem_next_to_its_field_in_the_apis_words(client, logged_in):
    c = _zoned()
    logged_in("marketer")
    past = (datetime.now(UTC) - timedelta(days=5)).date().isoformat()
    response = _send(client, c.id, local_time="9 am", local_date=past, fallback_zone="")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/campaigns/{c.id}#review")
    page = _page(client, f"/campaigns/{c.id}")
    assert _field_error(page, "local_time") == 'The local time must be a 24-hour time "HH:MM", e.g. 09:00.'
    assert _field_error(page, "local_date") == "The date is in the past; pick today or a later day."
    assert _field_error(page, "fallback_zone").startswith("The fallback time zone is required")
    assert 'id="local-time" open' in page  # the panel comes back open, with what was typed
    assert 'value="9 am"' in page and f'value="{past}"' in page
    assert "Nothing was sent: check the delivery options marked below." in _text(page)
    assert _fresh(c.id).status == "draft"
    # The same words as the API's refusal of the same body.
    from dashboard.services import control

    try:
        control.parse_options({"sendAt": {"localTime": "9 am", "date": "2030-01-01", "fallbackZone": "UTC"}})
    except Exception as err:  # noqa: BLE001 - the API's message, compared below
        api_words = err.message
    assert api_words == 'sendAt.localTime must be a 24-hour time "HH:MM", e.g. 09:00.'
    # An unknown zone (typed past the picker) and a bad "passed" value.
    _send(client, c.id, local_date=(date.today() + timedelta(days=2)).isoformat(), fallback_zone="Mars/Base",
          passed="later")
    page = _page(client, f"/campaigns/{c.id}")
    assert _field_error(page, "fallback_zone") == ('The fallback time zone: "Mars/Base" is not an IANA time zone '
                                                    'name (e.g. Europe/Paris, Asia/Kolkata, UTC).')
    assert "Not a valid choice" in _field_error(page, "passed") or "must be" in _field_error(page, "passed")
    # A local-time send cannot also have a canary (check_options, the API's rule).
    _send(client, c.id, local_date=(date.today() + timedelta(days=2)).isoformat(), canary="size", canary_size="2")
    page = _page(client, f"/campaigns/{c.id}")
    assert "cannot also have a canary or a spread" in _field_error(page, "local_time")
    assert _fresh(c.id).status == "draft"


def test_a_local_time_send_through_the_form_is_scheduled_in_waves_and_the_live_page_shows_them(client, logged_in):
    c = _zoned()
    logged_in("marketer")
    day = (datetime.now(UTC) + timedelta(days=3)).date()
    response = _send(client, c.id, local_date=day.isoformat(), ignore_frequency_cap="y")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/campaigns/{c.id}")
    campaign = assert_counters_match_rows(c.id)
    assert (campaign.status, campaign.wave_count, campaign.frequency_cap, campaign.quiet_hours) == (
        "scheduled", 5, False, True)
    assert campaign.send_at == {"localTime": "09:00", "date": day.isoformat(), "fallbackZone": "Europe/Paris",
                                "passed": "next_day"}
    waves = db.session.scalars(select(CampaignWave).where(CampaignWave.campaign_id == c.id)
                               .order_by(CampaignWave.number)).all()
    assert [w.zones for w in waves] == [["Asia/Tokyo"], ["Asia/Kathmandu"], ["Asia/Kolkata"], ["Europe/Paris"],
                                        ["America/New_York"]]
    assert campaign.scheduled_at == waves[0].due_at
    page = _page(client, f"/campaigns/{c.id}")
    text = _text(page)
    assert f"Scheduled at 09:00 in each recipient's time zone on {day.day} {day:%b %Y}, fallback Europe/Paris: " \
           "5 waves, the first" in text
    assert f"Sends at 09:00 in each recipient's time zone on {day.day} {day:%b %Y}, fallback Europe/Paris; " \
           "where that time had already passed: the next day." in text
    assert len(re.findall(r'data-testid="wave-row"', page)) == 5
    zones = [htmllib.unescape(z) for z in re.findall(r'data-testid="wave-zones"[^>]*>([^<]*)', page)]
    assert zones == ["Asia/Tokyo", "Asia/Kathmandu", "Asia/Kolkata", "Europe/Paris", "America/New_York"]
    counts = re.findall(r'data-testid="wave-recipients">([^<]*)<', page)
    assert counts == ["1", "1", "2", "1", "1"]
    assert re.findall(r'data-testid="wave-local">([^<]*)<', page) == ["09:00"] * 5
    assert page.count(">waiting</span>") == 5
    assert re.search(r"Next wave in <strong>\d+ h( \d+ min)?</strong>", page)
    # The status partial (what the live poll fetches) carries the same panel.
    partial = client.get(f"/campaigns/{c.id}/_status?shown=scheduled", headers={"HX-Request": "true"})
    assert partial.status_code == 200 and 'data-testid="waves"' in partial.get_data(as_text=True)
    # Unschedule forgets the waves: back to a draft without a panel.
    token = csrf_from(page)
    client.post(f"/campaigns/{c.id}/unschedule", data={"csrf_token": token})
    c2 = assert_counters_match_rows(c.id)
    assert (c2.status, c2.wave_count) == ("draft", 0)
    assert 'data-testid="waves"' not in _page(client, f"/campaigns/{c.id}")


def test_many_zones_are_cut_to_the_first_few_and_quiet_hours_show_as_held(client, logged_in):
    workspace.set_quiet_hours(True, "21:00", "08:00", ACTOR)
    zones = {f"u{i}": z for i, z in enumerate(["Europe/Paris", "Europe/Berlin", "Europe/Rome", "Europe/Madrid",
                                               "Europe/Vienna", "Asia/Tokyo"])}
    c = _zoned(zones)
    logged_in("marketer")
    # 22:00 local: inside quiet hours everywhere, so every wave is held until 08:00 the next day.
    day = (datetime.now(UTC) + timedelta(days=4)).date()
    _send(client, c.id, local_date=day.isoformat(), local_time="22:00")
    campaign = _fresh(c.id)
    assert campaign.status == "scheduled"
    page = _page(client, f"/campaigns/{c.id}")
    text = _text(page)
    assert "Europe/Berlin, Europe/Madrid, Europe/Paris +2 more" in text  # five CET zones, then Tokyo
    assert re.search(r'title="Europe/Berlin, Europe/Madrid, Europe/Paris, Europe/Rome, Europe/Vienna"', page)
    assert "08:00 (quiet hours end)" in text
    assert "held (quiet hours)" in text and "until" in text
    # The same send, ignoring quiet hours: 22:00 as asked.
    lifecycle.unschedule(c.id, ACTOR)
    _send(client, c.id, local_date=day.isoformat(), local_time="22:00", ignore_quiet_hours="y")
    campaign = _fresh(c.id)
    assert (campaign.status, campaign.quiet_hours) == ("scheduled", False)
    page = _page(client, f"/campaigns/{c.id}")
    assert "held (quiet hours)" not in page and re.findall(r'data-testid="wave-local">([^<]*)<', page) == [
        "22:00", "22:00"]


def test_no_waves_no_panel_and_no_wave_query(client, logged_in, app):
    c = make_campaign(3)
    logged_in("marketer")
    token = csrf_from(_page(client, f"/campaigns/{c.id}"))
    client.post(f"/campaigns/{c.id}/send", data={"csrf_token": token, "intent": "now"})
    from sqlalchemy import event

    statements = []

    def seen(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        partial = client.get(f"/campaigns/{c.id}/_status?shown=sending", headers={"HX-Request": "true"})
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    assert partial.status_code in (200, 286) and 'data-testid="waves"' not in partial.get_data(as_text=True)
    assert not [s for s in statements if "campaign_waves" in s]


def test_workspace_quiet_hours_and_caps_round_trip_with_errors_shown_and_audited(client, logged_in):
    logged_in("admin")
    page = _page(client, "/admin/workspace")
    assert 'id="quiet-hours"' in page and 'id="frequency-caps"' in page
    assert page.count('data-testid="cap-row"') == 5
    token = csrf_from(page)
    # Quiet hours: a bad time and an empty window are refused next to their field.
    bad = client.post("/admin/workspace/quiet-hours", data={"csrf_token": token, "quiet-csrf_token": token,
                                                            "quiet-enabled": "y", "quiet-start": "25:00",
                                                            "quiet-end": "08:00"})
    assert bad.status_code == 400
    assert _field_error(bad.get_data(as_text=True), "quiet-start") == \
        'Start must be a 24-hour time "HH:MM", e.g. 09:00.'
    same = client.post("/admin/workspace/quiet-hours", data={"quiet-csrf_token": token, "quiet-enabled": "y",
                                                             "quiet-start": "08:00", "quiet-end": "08:00"})
    assert same.status_code == 400
    assert _field_error(same.get_data(as_text=True), "quiet-end").startswith("Start and end must differ")
    assert workspace.quiet_hours().enabled is False
    ok = client.post("/admin/workspace/quiet-hours", data={"quiet-csrf_token": token, "quiet-enabled": "y",
                                                           "quiet-start": "22:30", "quiet-end": "07:15"})
    assert ok.status_code == 302
    quiet = workspace.quiet_hours()
    assert (quiet.enabled, quiet.start.strftime("%H:%M"), quiet.end.strftime("%H:%M")) == (True, "22:30", "07:15")
    page = _page(client, "/admin/workspace")
    assert "Quiet hours are on: 22:30–07:15 in each recipient's time zone" in _text(page)
    assert 'name="quiet-start" type="time" value="22:30"' in page
    assert re.search(r'<input[^>]* checked[^>]* name="quiet-enabled"|<input checked[^>]*name="quiet-enabled"', page)
    # Frequency caps: every bad row says so, nothing is stored.
    caps = {"caps-csrf_token": token, "caps-rule_0-channel": "all", "caps-rule_0-limit": "0",
            "caps-rule_0-window": "24h", "caps-rule_1-channel": "email", "caps-rule_1-limit": "two",
            "caps-rule_1-window": "7d"}
    bad = client.post("/admin/workspace/frequency-caps", data=caps)
    assert bad.status_code == 400
    html = bad.get_data(as_text=True)
    message = "Must be a whole number from 1 to 1,000 (messages per user)."
    assert _field_error(html, "caps-rule_0-limit") == message and _field_error(html, "caps-rule_1-limit") == message
    assert 'value="two"' in html and workspace.frequency_caps() == []
    dup = client.post("/admin/workspace/frequency-caps", data=caps | {
        "caps-rule_0-limit": "3", "caps-rule_1-limit": "5", "caps-rule_1-channel": "all",
        "caps-rule_1-window": "24h"})
    assert dup.status_code == 400
    assert _field_error(dup.get_data(as_text=True), "caps-rule_1-window") == "There is already a 24h cap for all."
    saved = client.post("/admin/workspace/frequency-caps", data=caps | {
        "caps-rule_0-limit": "3", "caps-rule_1-limit": "2", "caps-rule_4-channel": "webhook",
        "caps-rule_4-limit": "10", "caps-rule_4-window": "24h"})
    assert saved.status_code == 302
    assert [r.as_json() for r in workspace.frequency_caps()] == [
        {"channel": "all", "limit": 3, "window": "24h"}, {"channel": "email", "limit": 2, "window": "7d"},
        {"channel": "webhook", "limit": 10, "window": "24h"}]
    page = _page(client, "/admin/workspace")
    assert "Frequency caps saved: at most 3 in the last 24 h; 2 email in the last 7 days; 10 webhook in the last " \
           "24 h." in _text(page)
    limits = re.findall(r'name="caps-rule_\d-limit"[^>]*value="([^"]*)"', page)
    assert limits == ["3", "2", "10", "", ""]
    # Emptying every row removes the caps.
    cleared = client.post("/admin/workspace/frequency-caps", data={"caps-csrf_token": token})
    assert cleared.status_code == 302 and workspace.frequency_caps() == []
    actions = db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions.count("workspace.quiet_hours") == 1 and actions.count("workspace.frequency_caps") == 2


def test_csrf_and_roles_are_enforced(client, logged_in, app):
    c = _zoned()
    logged_in("admin")
    day = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    no_token = client.post(f"/campaigns/{c.id}/send", data=DEFAULTS | {"local_date": day})
    assert no_token.status_code in (400, 302) and _fresh(c.id).status == "draft"
    assert client.post("/admin/workspace/quiet-hours", data={"quiet-enabled": "y", "quiet-start": "21:00",
                                                             "quiet-end": "08:00"}).status_code == 400
    assert client.post("/admin/workspace/frequency-caps", data={"caps-rule_0-limit": "3"}).status_code == 400
    assert workspace.quiet_hours().enabled is False and workspace.frequency_caps() == []
    _logout(client)
    logged_in("marketer")
    token = csrf_from(_page(client, f"/campaigns/{c.id}"))
    assert client.get("/admin/workspace").status_code == 403
    assert client.post("/admin/workspace/quiet-hours", data={"quiet-csrf_token": token, "quiet-enabled": "y",
                                                             "quiet-start": "21:00", "quiet-end": "08:00"}
                       ).status_code == 403
    assert client.post("/admin/workspace/frequency-caps", data={"caps-csrf_token": token, "caps-rule_0-limit": "3"}
                       ).status_code == 403
    _logout(client)
    logged_in("support")
    page = _page(client, f"/campaigns/{c.id}")
    assert 'id="local-time"' not in page
    token = csrf_from(page)
    assert client.post(f"/campaigns/{c.id}/send", data=DEFAULTS | {"csrf_token": token, "local_date": day}
                       ).status_code == 403
    assert _fresh(c.id).status == "draft" and workspace.quiet_hours().enabled is False


def test_a_recipient_skipped_by_a_cap_shows_its_reason_in_the_recipients_table(client, logged_in):
    workspace.set_frequency_caps([{"channel": "all", "limit": 1, "window": "24h"}], ACTOR)
    first = make_campaign(1)  # u0 gets one message
    lifecycle.send(first.id, None, ACTOR)
    drain()
    c = lifecycle.duplicate(first.id, ACTOR)
    recipients.add_manual(c.id, ["u1"], None, ACTOR)
    lifecycle.send(c.id, None, ACTOR)  # u0 is over the cap of 1 per 24 h; u1 is not
    drain()
    done = assert_counters_match_rows(c.id)
    assert (done.status, done.sent, done.skipped) == ("sent", 1, 1)
    logged_in("support")
    page = _page(client, f"/campaigns/{c.id}?status=skipped")
    rows = re.findall(r"<tr>\s*<td class=\"mono\">([^<]+)</td>.*?</tr>", page, re.S)
    assert rows == ["u0"]  # the skipped filter: one row, with its badge and its reason
    row = re.search(r'<td class="mono">u0</td>.*?</tr>', page, re.S).group(0)
    assert 'rstatus-skipped">skipped<' in row and "<td>frequency cap: 1 in the last 24 h</td>" in row


def test_a_csv_with_a_bad_timezone_shows_the_row_and_column_in_the_upload_preview(client, logged_in):
    c = make_campaign(0)
    logged_in("marketer")
    import io

    token = csrf_from(_page(client, f"/campaigns/{c.id}"))
    raw = b"userId,offer,timezone\nu1,x,Asia/Kolkata\nu2,y,Mars/Base\nu3,z,\n"
    response = client.post(f"/campaigns/{c.id}/upload", headers={"HX-Request": "true"},
                           data={"csrf_token": token, "file": (io.BytesIO(raw), "zones.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'data-testid="accepted-count">2 ready to import' in html
    assert 'data-testid="rejected-count">1 row rejected' in html
    rows = re.findall(r'<tr><td class="num">(\d+)</td><td class="mono">([^<]*)</td><td>([^<]*)</td></tr>', html)
    assert [(r, col, htmllib.unescape(m)) for r, col, m in rows] == [
        ("3", "timezone", '"Mars/Base" is not an IANA time zone name (e.g. Europe/Paris, Asia/Kolkata, UTC)')]
