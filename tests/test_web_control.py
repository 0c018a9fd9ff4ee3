"""Delivery control in the dashboard (issue 14), through the test client with real Redis and
jobs run by a real RQ worker in process: Review & send's advanced options (canary, automatic
pause, spread) judged by control.parse_options, the live page's hold panel, Continue, Pause and
Resume, an automatic halt's banner, and four-eyes approval (the requester's own is refused)."""

from __future__ import annotations

import html as htmllib
import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from dashboard.extensions import db
from dashboard.models import AuditEvent, Campaign
from dashboard.services import control, lifecycle, workspace
from dashboard.services.actor import Actor
from tests.conftest import csrf_from, login
from tests.engine import drain
from tests.test_delivery_faults import assert_counters_match_rows
from tests.test_sending import make_campaign

ACTOR = Actor.system("test")
DEFAULTS = {"advanced": "1", "canary": "off", "canary_size": "", "canary_percent": "", "hold_minutes": "",
            "halt": "canary", "halt_percent": "5", "halt_window": "200", "spread_minutes": "", "intent": "now"}


def _page(client, cid: int) -> str:
    return client.get(f"/campaigns/{cid}").get_data(as_text=True)


def _post(client, cid: int, action: str, **data):
    token = csrf_from(_page(client, cid))
    return client.post(f"/campaigns/{cid}/{action}", data={"csrf_token": token, **data})


def _send(client, cid: int, **fields):
    return _post(client, cid, "send", **(DEFAULTS | fields))


def _form_of(page: str, action: str) -> str:
    """The <form> tag that posts to /campaigns/<id>/<action> (its data-confirm unescaped)."""
    match = re.search(rf'<form method="post" action="/campaigns/\d+/{action}"[^>]*>', page)
    assert match, f"no {action} button on the page"
    return htmllib.unescape(match.group(0))


def _text(page: str) -> str:
    """The page as a reader sees it: tags dropped, entities decoded, whitespace collapsed."""
    return re.sub(r"\s+", " ", htmllib.unescape(re.sub(r"<[^>]+>", " ", page)))


def _status(cid: int) -> Campaign:
    db.session.expire_all()
    return db.session.get(Campaign, cid)


def test_a_canary_sent_from_the_form_holds_with_its_results_and_continue_sends_the_rest(client, logged_in):
    c = make_campaign(200)
    logged_in("marketer")
    page = _page(client, c.id)
    assert 'id="advanced-delivery"' in page and "Canary first wave" in page
    assert "Pause automatically if more than" in page and "Spread the send over" in page

    response = _send(client, c.id, canary="percent", canary_percent="10")
    assert response.status_code == 302
    sending = _text(_page(client, c.id))
    assert "Sending a first wave to 20 of 200 recipients; then it waits until you continue." in sending
    assert (_status(c.id).canary_percent, _status(c.id).halt_percent, _status(c.id).halt_window) == (10.0, 5.0, 200)
    drain()

    held = assert_counters_match_rows(c.id)
    assert (held.status, held.canary_state, held.sent, held.pending) == ("paused", "held", 20, 180)
    page = _page(client, c.id)
    text = _text(page)
    assert 'data-testid="status-badge">paused<' in page and "Canary wave done — waiting for you" in text
    assert re.search(r'data-testid="canary-recipients">20<', page)
    assert re.search(r'data-testid="canary-sent">20<', page) and re.search(r'data-testid="canary-failed">0<', page)
    assert 'data-testid="canary-read">0<' in page  # in-app: reads and clicks so far
    assert "No failures in the first wave." in text
    assert "hold-countdown" not in page  # no holdMinutes: it waits for Continue
    resume = _form_of(page, "resume")
    assert 'data-confirm="Send to the remaining 180 recipients?"' in resume
    assert re.search(r'class="btn btn-primary">Continue</button>', page)
    assert "/pause" not in page  # nothing to pause while held

    assert _post(client, c.id, "resume").status_code == 302
    assert "Continuing: sending to the remaining 180 recipients." in _page(client, c.id)
    drain()
    done = assert_counters_match_rows(c.id)
    assert (done.status, done.sent, done.canary_state) == ("sent", 200, "done")
    assert 'data-testid="status-badge">sent<' in _page(client, c.id)


def test_a_timed_hold_shows_its_countdown(client, logged_in):
    c = make_campaign(100)
    logged_in("marketer")
    _send(client, c.id, canary="size", canary_size="10", hold_minutes="30")
    drain()
    page = _page(client, c.id)
    assert _status(c.id).canary_state == "held"
    assert re.search(r'data-testid="hold-countdown">continues by itself in (29 min( \d+ s)?|30 min)<', page)


def test_pause_and_resume_buttons(client, logged_in):
    c = make_campaign(3000)
    account = logged_in("marketer")
    _send(client, c.id)  # the form's defaults: no canary, no automatic pause, no spread
    sending = _status(c.id)
    assert (sending.status, sending.canary_state, sending.halt_percent, sending.spread_minutes) == (
        "sending", None, None, None)
    page = _page(client, c.id)
    assert "Nothing more is sent until you resume; the recipients still to go wait." in _form_of(page, "pause")
    assert 'id="controls-sending" hx-preserve="true"' in page  # kept across polls while the state is the same

    assert _post(client, c.id, "pause").status_code == 302
    drain()  # the queued chunks see the pause and send nothing
    paused = assert_counters_match_rows(c.id)
    assert (paused.status, paused.sent) == ("paused", 0)
    page = _page(client, c.id)
    text = _text(page)
    assert "Paused: nothing more is sent until you resume." in text
    assert 'class="badge status-paused big"' in page
    assert "Nothing more is sent until someone resumes it." in text and f"Paused by {account.email} · " in text
    assert "Resume sending to the remaining 3,000 recipients? So far 0 sent and 0 failed." in _form_of(page, "resume")
    assert re.search(r'class="btn btn-primary">Resume</button>', page)
    assert 'href="/campaigns?status=paused"' in client.get("/campaigns").get_data(as_text=True)
    listed = client.get("/campaigns?status=paused").get_data(as_text=True)
    assert f'href="/campaigns/{c.id}"' in listed and "status-paused" in listed

    assert _post(client, c.id, "resume").status_code == 302
    assert "Resumed: sending to the remaining 3,000 recipients." in _page(client, c.id)
    drain()
    done = assert_counters_match_rows(c.id)
    assert (done.status, done.sent) == ("sent", 3000)
    assert _post(client, c.id, "pause").status_code == 302  # too late now: the page says why
    assert "Campaign is sent; it cannot pause from there." in _text(_page(client, c.id))
    assert _status(c.id).status == "sent"
    actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.target_id == str(c.id))
                                 .order_by(AuditEvent.id)).all()
    assert [a for a in actions if a in ("campaign.pause", "campaign.resume")] == ["campaign.pause", "campaign.resume"]


def test_an_automatic_halt_shows_its_figures_and_resume_asks_with_them(client, logged_in):
    c = make_campaign(500)
    logged_in("marketer")
    _send(client, c.id, halt="always", halt_percent="3", halt_window="100")
    assert (_status(c.id).halt_percent, _status(c.id).halt_window) == (3.0, 100)
    assert control.halt(c.id, "12 of the last 100 deliveries failed (12.0%), above the 3% halt rule")
    db.session.commit()
    page = _page(client, c.id)
    text = _text(page)
    assert "Paused automatically: too many deliveries failed" in text
    assert "12 of the last 100 deliveries failed (12.0%), above the 3% halt rule." in text
    assert "Paused by system · " in text
    confirm = _form_of(page, "resume")
    assert "It paused itself because 12 of the last 100 deliveries failed (12.0%)" in confirm
    assert "Resume sending to the remaining 500 recipients?" in confirm
    assert _post(client, c.id, "resume").status_code == 302
    drain()
    assert (assert_counters_match_rows(c.id).status, _status(c.id).sent) == ("sent", 500)


def test_bad_option_values_show_next_to_their_fields_and_nothing_is_sent(client, logged_in):
    c = make_campaign(50)
    logged_in("marketer")
    response = _send(client, c.id, canary="size", canary_size="lots", hold_minutes="0", halt="always",
                     halt_percent="500", halt_window="200", spread_minutes="-3")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/campaigns/{c.id}#review")
    page = _page(client, c.id)
    assert _status(c.id).status == "draft"
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "campaign.send")) == 0
    errors = dict(re.findall(r'<p class="field-error" id="([\w-]+)-error">([^<]+)</p>', page))
    assert errors["canary_size"] == "Must be a whole number from 1 to 10,000,000."
    assert errors["hold_minutes"] == "Must be a whole number from 1 to 10,080."
    assert errors["halt_percent"] == "Must be a number above 0 and at most 100."
    assert errors["spread_minutes"] == "Must be a whole number from 1 to 10,080."
    assert "Nothing was sent: check the delivery options marked below." in page
    assert re.search(r'<details class="advanced" id="advanced-delivery" open>', page)
    for name, typed in (("canary_size", "lots"), ("hold_minutes", "0"), ("halt_percent", "500"),
                        ("spread_minutes", "-3")):
        assert re.search(rf'<input[^>]*name="{name}"[^>]*value="{typed}"', page) or \
            re.search(rf'<input[^>]*value="{typed}"[^>]*name="{name}"', page), name
    assert re.search(r'<input[^>]*checked[^>]*value="size"|<input[^>]*value="size"[^>]*checked', page)
    assert re.search(r'aria-invalid="true"', page)
    assert "Must be a whole number" not in _page(client, c.id)  # shown once, like the flash

    # A wave as large as the audience is refused by the send-time check, next to the field.
    _send(client, c.id, canary="size", canary_size="50")
    page = _page(client, c.id)
    assert "A first wave of 50 would reach all 50 recipients; make it smaller than the audience." in page
    assert _status(c.id).status == "draft"
    # A chosen canary with no number says which number is missing.
    _send(client, c.id, canary="percent", canary_percent="")
    assert "Enter a percentage for the first wave." in _page(client, c.id)
    assert _status(c.id).status == "draft"


def test_schedule_takes_the_options_too_and_htmx_is_sent_to_the_page(client, logged_in):
    c = make_campaign(100)
    logged_in("marketer")
    token = csrf_from(_page(client, c.id))
    day = datetime.now(UTC) + timedelta(days=30)
    local = f"{day:%Y-%m-%d}T10:30"
    response = client.post(f"/campaigns/{c.id}/send", headers={"HX-Request": "true"}, data=DEFAULTS | {
        "csrf_token": token, "intent": "schedule", "scheduled_local": local, "timezone": "UTC",
        "canary": "size", "canary_size": "10", "hold_minutes": "45"})
    assert response.status_code == 204 and response.headers["HX-Redirect"] == f"/campaigns/{c.id}"
    scheduled = _status(c.id)
    assert (scheduled.status, scheduled.canary_size, scheduled.canary_hold_minutes, scheduled.halt_percent) == (
        "scheduled", 10, 45, 5.0)
    text = _text(_page(client, c.id))
    assert f"Scheduled for {day:%a} {day.day} {day:%b} 10:30" in text
    assert "Canary: it sends a first wave (10 recipients) first; then the send holds for 45 min" in text
    # A refused schedule over HTMX: the same page, with the option's error and the typed date kept.
    c2 = lifecycle.duplicate(c.id, ACTOR)
    token = csrf_from(_page(client, c2.id))
    response = client.post(f"/campaigns/{c2.id}/send", headers={"HX-Request": "true"}, data=DEFAULTS | {
        "csrf_token": token, "intent": "schedule", "scheduled_local": local, "timezone": "UTC",
        "canary": "percent", "canary_percent": "100"})
    assert response.status_code == 204 and response.headers["HX-Redirect"] == f"/campaigns/{c2.id}#review"
    page = _page(client, c2.id)
    assert "Must be a number above 0 and at most 99.9." in page and f'value="{local}"' in page
    assert _status(c2.id).status == "draft"


def test_spread_shows_its_rate_cap_while_typing_and_on_the_live_page(client, logged_in):
    c = make_campaign(7200)
    logged_in("marketer")
    hint = client.get(f"/campaigns/{c.id}/_spread?spread_minutes=60", headers={"HX-Request": "true"})
    assert hint.status_code == 200
    assert "At most 2.0/s: 7,200 recipients over about 1 h." in hint.get_data(as_text=True)
    assert "Must be a whole number from 1 to 10,080." in client.get(
        f"/campaigns/{c.id}/_spread?spread_minutes=0").get_data(as_text=True)
    assert "Empty: as fast as the channel allows" in client.get(f"/campaigns/{c.id}/_spread").get_data(as_text=True)
    _send(client, c.id, spread_minutes="60")
    campaign = _status(c.id)
    assert (campaign.status, campaign.spread_minutes) == ("sending", 60)
    status = client.get(f"/campaigns/{c.id}/_status?shown=sending", headers={"HX-Request": "true"})
    html = status.get_data(as_text=True)
    assert 'data-testid="progress-spread">over 60 min · at most 2.0/s<' in html
    assert 'data-testid="progress-eta">about 1 h<' in html  # before the first send: the spread's own pace


def test_four_eyes_the_requesters_own_approval_is_refused_on_the_page(client, app, make_account):
    c = make_campaign(3)
    workspace.set_four_eyes(True, 2, ACTOR)
    asker, other = make_account("marketer"), make_account("admin")
    assert login(client, asker.email).status_code == 302
    _send(client, c.id)
    waiting = _status(c.id)
    assert (waiting.status, waiting.awaiting_approval, waiting.approval_requested_by) == (
        "scheduled", True, asker.email)
    page = _page(client, c.id)
    text = _text(page)
    assert "needs a second person's approval; it starts now once someone else approves it." in text
    assert "Waiting for a second person's approval" in text
    assert f"Requested by {asker.email}" in text and "sends now, as soon as it is approved" in text
    assert "You asked for this send; someone else must approve it." in text
    assert "scheduled · awaiting approval" in text
    assert "/approve-send" not in page  # no button for the one who asked

    response = _post(client, c.id, "approve-send")  # e.g. from another tab
    assert response.status_code == 302
    text = _text(_page(client, c.id))
    assert f"{asker.email} asked for this send; a different person must approve it." in text
    assert _status(c.id).status == "scheduled" and _status(c.id).approved_at is None

    second = app.test_client()
    assert login(second, other.email).status_code == 302
    page = second.get(f"/campaigns/{c.id}").get_data(as_text=True)
    assert 'data-confirm="Approve sending “C” to 3 recipients now?"' in _form_of(page, "approve-send")
    token = csrf_from(page)
    assert second.post(f"/campaigns/{c.id}/approve-send", data={"csrf_token": token}).status_code == 302
    assert "Approved: sending to 3 recipients." in second.get(f"/campaigns/{c.id}").get_data(as_text=True)
    drain()
    done = assert_counters_match_rows(c.id)
    assert (done.status, done.sent, done.approved_by) == ("sent", 3, other.email)


def test_support_sees_the_hold_but_no_control_buttons(client, logged_in):
    c = make_campaign(100)
    lifecycle.send(c.id, None, ACTOR, options=control.parse_options({"canary": {"size": 5}}))
    drain()
    logged_in("support")
    page = _page(client, c.id)
    assert "Canary wave done — waiting for you" in _text(page) and 'data-testid="canary-report"' in page
    assert "/resume" not in page and "/cancel" not in page and "Advanced delivery" not in page
    assert _post(client, c.id, "resume").status_code == 403
