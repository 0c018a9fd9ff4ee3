"""A segment campaign sent through a real RQ worker process (PostgreSQL): in-app, email to a real
SMTP server and webhook to a real HTTP server. The audience is materialised at send by one
INSERT … SELECT; every matching user gets exactly one message, with the variables taken from
their attributes, and the counters equal the recipient rows."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import func, select

from dashboard.extensions import db
from dashboard.models import Notification, Recipient
from dashboard.services import audiences, campaigns, lifecycle
from dashboard.services.actor import Actor
from tests.engine import wait_for
from tests.test_api_campaigns import make_template
from tests.test_audiences import make_segment, make_users
from tests.test_delivery_control_workers import assert_each_once, pool, sinks  # noqa: F401 (fixtures)
from tests.test_delivery_faults import assert_counters_match_rows, status_of

pytestmark = pytest.mark.skipif(os.environ.get("HERALD_TEST_DB", "sqlite") != "postgresql",
                                reason="real-worker audience sends run on PostgreSQL (the production database)")
ACTOR = Actor.system("test")
N = 1500  # 1,000 of them on the pro plan (every third user is free)


@pytest.mark.parametrize("channel", ("in_app", "email", "webhook"))
def test_a_segment_campaign_reaches_each_matching_user_once_through_a_real_worker(
        sinks, pool, channel):  # noqa: F811
    sink = sinks(channel, 5000)
    make_users(N)
    segment = make_segment()
    make_template(channels={"in_app": {"title": "Hi {{ firstName }}", "body": "{{ offer }}"},
                            "email": {"subject": "Hi {{ firstName }}", "text": "{{ offer }}"}})
    c = campaigns.create({"name": f"Segment {channel}", "templateId": "promo", "channel": channel,
                          "variables": {"offer": "10% off"}}, ACTOR)
    audiences.set_audience(c.id, "segment", segment.id, ACTOR)
    expected = {f"u{i}" for i in range(N) if i % 3}
    pool()
    sent = lifecycle.send(c.id, None, ACTOR)
    assert sent.total == sent.audience_size == len(expected)
    wait_for(lambda: status_of(c.id) == "sent", 90, "the segment send to complete")
    c = assert_counters_match_rows(c.id)
    assert (c.sent, c.failed, c.skipped, c.total) == (len(expected), 0, 0, len(expected))
    assert set(db.session.scalars(select(Recipient.user_id).where(Recipient.campaign_id == c.id))) == expected
    assert_each_once(sink, c.id, expected)
    if channel == "in_app":
        title = db.session.scalar(select(Notification.title).where(Notification.campaign_id == c.id,
                                                                     Notification.user_id == "u7"))
        assert title == "Hi Name7"  # firstName from the user's attributes
        assert db.session.scalar(select(func.count()).select_from(Notification)
                                 .where(Notification.campaign_id == c.id)) == len(expected)
    elif channel == "email":
        mail = next(m for m in sink.smtp.messages if m["to"] == ["u7@example.com"])
        assert "Subject: Hi Name7" in mail["data"]
    else:
        hook = next(r for r in sink.http.requests if r["json"]["userId"] == "u7")
        assert "Hi Name7" in hook["body"].decode()
