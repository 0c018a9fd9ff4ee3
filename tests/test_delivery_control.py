"""Delivery control in process (issue 14): pause/resume, canary wave and hold, automatic halt."""

from __future__ import annotations

from sqlalchemy import func, select

from dashboard.extensions import db
from dashboard.models import Recipient
from dashboard.services import control, lifecycle
from dashboard.services.actor import Actor
from dashboard.services.delivery import guard
from tests.engine import drain
from tests.test_delivery_faults import assert_counters_match_rows
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
