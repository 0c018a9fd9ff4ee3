"""Frequency caps (issue 15, SPEC §10): at most N campaign messages per user per rolling window.
Two real worker processes sending two campaigns to overlapping users at once never let a
user past the cap (PostgreSQL); in-process (SimpleWorker, SQLite too): a per-channel rule
leaves other channels alone, email (a real SMTP server) and webhook (a real HTTP server)
apply the cap and a message the sink refuses does not count, one-call notifications and test
sends are exempt. Every campaign ends with its counters equal to its recipient rows."""

from __future__ import annotations

import collections
import os

import pytest
from rq import Worker
from sqlalchemy import func, select, text

from dashboard.extensions import db, get_redis
from dashboard.models import Campaign, Notification, Recipient
from dashboard.services import campaigns, control, lifecycle, notifications, recipients, test_sends, workspace
from dashboard.services.actor import Actor
from tests.engine import drain, drain_until_idle, wait_for
from tests.test_api_campaigns import make_template
from tests.test_delivery_control_workers import pool, sinks  # noqa: F401 (fixtures)
from tests.test_delivery_faults import assert_counters_match_rows, status_of

ACTOR = Actor.system("test")
PG_ONLY = pytest.mark.skipif(os.environ.get("HERALD_TEST_DB", "sqlite") != "postgresql",
                             reason="real-worker concurrency runs on PostgreSQL (the production database)")


@pytest.fixture(autouse=True)
def template():
    make_template(channels={"in_app": {"title": "Hi {{ firstName }}", "body": "{{ offer }}"},
                            "email": {"subject": "Hi {{ firstName }}", "text": "{{ offer }}"}})


def make_campaign(channel: str, users, name: str = "Capped") -> Campaign:
    c = campaigns.create({"name": name, "templateId": "promo", "channel": channel,
                          "variables": {"offer": "10% off"}}, ACTOR)
    recipients.add_manual(c.id, list(users), None, ACTOR)
    if channel == "email":
        db.session.execute(text("UPDATE recipients SET email = user_id || '@example.com' WHERE campaign_id = :c"),
                           {"c": c.id})
        db.session.commit()
    return c


def caps(*rules) -> None:
    workspace.set_frequency_caps([{"channel": ch, "limit": n, "window": w} for ch, n, w in rules], ACTOR)


def send_and_drain(c: Campaign, **options) -> Campaign:
    lifecycle.send(c.id, None, ACTOR, options=control.parse_options(options) if options else None)
    drain_until_idle()
    c = assert_counters_match_rows(c.id)
    assert c.status == "sent", c.status
    return c


def by_status(campaign_id: int) -> dict[str, set[str]]:
    db.session.expire_all()
    out = collections.defaultdict(set)
    for user, status in db.session.execute(select(Recipient.user_id, Recipient.status)
                                           .where(Recipient.campaign_id == campaign_id)):
        out[status].add(user)
    return out


def errors(campaign_id: int, status: str = "skipped") -> set[str | None]:
    return set(db.session.scalars(select(Recipient.last_error).where(Recipient.campaign_id == campaign_id,
                                                                     Recipient.status == status)))


def users(prefix: str, lo: int, hi: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(lo, hi)]


# -- two workers, two campaigns, overlapping users ------------------------------------------------

@PG_ONLY
def test_two_workers_sending_two_campaigns_at_once_never_exceed_the_cap(sinks, pool, capsys):  # noqa: F811
    caps(("all", 2, "24h"))
    sinks("in_app", 400.0)  # the two sends share the channel's 400/s: about 3 s of sending together
    env = {"HERALD_BATCH_CHUNK": "1000"}  # one chunk per campaign: each worker sends one, side by side
    pool(**env)
    pool(**env)
    wait_for(lambda: sum(w.state == "idle" for w in Worker.all(connection=get_redis())) == 2, 30,
             "both workers to be up and waiting for jobs")
    # u200..u399 already had one campaign message today: one slot left for the two campaigns below.
    earlier = make_campaign("in_app", users("u", 200, 400), "Earlier")
    lifecycle.send(earlier.id, None, ACTOR)
    wait_for(lambda: status_of(earlier.id) == "sent", 30, "the earlier campaign")
    first = make_campaign("in_app", users("u", 0, 600), "First")
    # The shared users sit at the same positions (200..399) in both, so both reach them together.
    second = make_campaign("in_app", users("u", 600, 800) + users("u", 200, 600), "Second")
    lifecycle.send(first.id, None, ACTOR)
    lifecycle.send(second.id, None, ACTOR)
    wait_for(lambda: status_of(first.id) == "sent" and status_of(second.id) == "sent", 60, "both campaigns")

    ids = (earlier.id, first.id, second.id)
    per_user = collections.Counter(dict(db.session.execute(
        select(Recipient.user_id, func.count()).where(Recipient.campaign_id.in_(ids), Recipient.status == "sent")
        .group_by(Recipient.user_id)).all()))
    targeted = collections.Counter(db.session.scalars(select(Recipient.user_id)
                                                      .where(Recipient.campaign_id.in_(ids))))
    over = {u: n for u, n in per_user.items() if n > 2}
    assert not over, f"{len(over)} users past the cap, e.g. {list(over.items())[:3]}"
    # Never over, and never held back below it: everyone got min(2, campaigns aimed at them).
    assert per_user == {u: min(2, n) for u, n in targeted.items()}
    feed = collections.Counter(db.session.scalars(select(Notification.user_id)
                                                  .where(Notification.campaign_id.in_(ids))))
    assert feed == per_user, "the feed holds exactly the messages counted as sent"
    counted = [assert_counters_match_rows(i) for i in ids]
    assert [(c.sent, c.failed) for c in counted][0] == (200, 0)
    skipped = by_status(first.id)["skipped"] | by_status(second.id)["skipped"]
    assert skipped == set(users("u", 200, 400)) and counted[1].skipped + counted[2].skipped == 200
    assert errors(first.id) | errors(second.id) == {"frequency cap: 2 in the last 24 h"}
    assert by_status(first.id)["skipped"].isdisjoint(by_status(second.id)["skipped"])
    ran = [w.successful_job_count for w in Worker.all(connection=get_redis())]
    assert len(ran) == 2 and min(ran) >= 2, f"jobs per worker: {ran} (both should have sent)"
    spans = [db.session.execute(select(func.min(Recipient.sent_at), func.max(Recipient.sent_at))
                                .where(Recipient.campaign_id == i)).one() for i in (first.id, second.id)]
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1], f"the two sends did not overlap: {spans}"
    with capsys.disabled():
        print(f"\n  caps: skipped {counted[1].skipped} in the first, {counted[2].skipped} in the second; "
              f"jobs per worker {ran}")


# -- in-process: channels, sinks, exemptions -----------------------------------------------------------

def test_a_per_channel_rule_caps_that_channel_only(sinks):  # noqa: F811
    caps(("email", 1, "24h"))
    sinks("email")
    audience = users("u", 0, 5)
    for name in ("In-app 1", "In-app 2"):
        c = send_and_drain(make_campaign("in_app", audience, name))
        assert (c.sent, c.skipped) == (5, 0), "an email cap touched in-app"
    c = send_and_drain(make_campaign("email", audience, "Email 1"))
    assert (c.sent, c.skipped) == (5, 0)
    c = send_and_drain(make_campaign("email", audience, "Email 2"))
    assert (c.sent, c.skipped, c.failed) == (0, 5, 0)
    assert errors(c.id) == {"frequency cap: 1 email in the last 24 h"}


def test_an_all_channels_rule_counts_every_channel_together(sinks):  # noqa: F811
    caps(("all", 2, "24h"))
    sinks("email")
    audience = users("u", 0, 4)
    send_and_drain(make_campaign("in_app", audience, "In-app"))
    send_and_drain(make_campaign("email", audience[:2], "Email"))
    c = send_and_drain(make_campaign("in_app", audience, "In-app again"))
    assert by_status(c.id)["skipped"] == set(audience[:2]) and by_status(c.id)["sent"] == set(audience[2:])
    assert errors(c.id) == {"frequency cap: 2 in the last 24 h"}


def test_email_applies_the_cap_and_a_message_the_smtp_server_refuses_does_not_count(sinks):  # noqa: F811
    caps(("email", 1, "24h"))
    sink = sinks("email")
    c = make_campaign("email", ["u0", "u1"], "Refused")
    db.session.execute(text("UPDATE recipients SET email = 'bad-u0@example.com' WHERE campaign_id = :c "
                            "AND user_id = 'u0'"), {"c": c.id})
    db.session.commit()
    c = send_and_drain(c)
    assert (c.sent, c.failed) == (1, 1) and by_status(c.id)["failed"] == {"u0"}
    c = send_and_drain(make_campaign("email", ["u0", "u1"], "Again"))
    assert by_status(c.id)["sent"] == {"u0"}, "the refused message still counted"
    assert by_status(c.id)["skipped"] == {"u1"}
    assert errors(c.id) == {"frequency cap: 1 email in the last 24 h"}
    delivered = collections.Counter(m["to"][0] for m in sink.smtp.messages)
    assert delivered == {"u0@example.com": 1, "u1@example.com": 1}


def test_an_email_retried_after_451s_counts_once_when_delivered(sinks, app, monkeypatch):  # noqa: F811
    monkeypatch.setitem(app.config, "HERALD_RETRY_BASE_SECONDS", 0.2)
    caps(("email", 2, "24h"))
    sink = sinks("email")
    c = send_and_drain(make_campaign("email", ["later0", "u1"], "Retried"))  # later*: 451 twice, then 250
    assert c.sent == 2
    assert db.session.scalar(select(Recipient.attempts).where(Recipient.campaign_id == c.id,
                                                              Recipient.user_id == "later0")) == 3
    c = send_and_drain(make_campaign("email", ["later0", "u1"], "Second"))
    assert (c.sent, c.skipped) == (2, 0), "the retries counted as more than one message"
    c = send_and_drain(make_campaign("email", ["later0", "u1"], "Third"))
    assert (c.sent, c.skipped) == (0, 2) and errors(c.id) == {"frequency cap: 2 email in the last 24 h"}
    assert collections.Counter(m["to"][0] for m in sink.smtp.messages) == {"later0@example.com": 2,
                                                                           "u1@example.com": 2}


def test_webhook_applies_the_cap_and_a_request_the_endpoint_refuses_does_not_count(sinks):  # noqa: F811
    caps(("webhook", 1, "24h"))
    sink = sinks("webhook")
    sink.http.plan["u0"] = [400]  # a permanent refusal, once
    c = send_and_drain(make_campaign("webhook", ["u0", "u1"], "Refused"))
    assert (c.sent, c.failed) == (1, 1) and by_status(c.id)["failed"] == {"u0"}
    c = send_and_drain(make_campaign("webhook", ["u0", "u1"], "Again"))
    assert by_status(c.id)["sent"] == {"u0"} and by_status(c.id)["skipped"] == {"u1"}
    assert errors(c.id) == {"frequency cap: 1 webhook in the last 24 h"}
    accepted = collections.Counter(r["json"]["userId"] for r in sink.http.requests)
    assert accepted == {"u0": 2, "u1": 1}  # u0: the refused request and the delivered one


def test_ignore_frequency_cap_sends_to_everyone():
    caps(("all", 1, "24h"))
    send_and_drain(make_campaign("in_app", ["u0", "u1"], "First"))
    c = send_and_drain(make_campaign("in_app", ["u0", "u1"], "Urgent"), ignoreFrequencyCap=True)
    assert (c.sent, c.skipped, c.frequency_cap) == (2, 0, False)


def test_one_call_notifications_are_exempt_unless_they_ask():
    caps(("all", 1, "24h"))
    send_and_drain(make_campaign("in_app", ["u0", "u1"], "Campaign"))
    exempt = notifications.send({"templateId": "promo", "targets": ["u0", "u1"], "variables": {"offer": "x"}}, ACTOR)
    drain()
    exempt = assert_counters_match_rows(exempt.id)
    assert (exempt.status, exempt.sent, exempt.skipped) == ("sent", 2, 0)
    asked = notifications.send({"templateId": "promo", "targets": ["u0", "u2"], "variables": {"offer": "x"},
                                "frequencyCap": True}, ACTOR)
    drain()
    asked = assert_counters_match_rows(asked.id)
    assert (asked.status, asked.sent, asked.skipped) == ("sent", 1, 1)
    assert by_status(asked.id)["skipped"] == {"u0"} and by_status(asked.id)["sent"] == {"u2"}
    assert errors(asked.id) == {"frequency cap: 1 in the last 24 h"}


def test_test_sends_are_exempt_and_do_not_count():
    caps(("all", 1, "24h"))
    send_and_drain(make_campaign("in_app", ["u0"], "Campaign"))
    draft = make_campaign("in_app", ["u0", "u5"], "Draft")
    test = test_sends.send(draft.id, ["u0", "u5"], ACTOR)  # u0 is at the cap already
    drain()
    test = assert_counters_match_rows(test.id)
    assert (test.status, test.sent, test.skipped) == ("sent", 2, 0)
    c = send_and_drain(draft)
    assert by_status(c.id)["sent"] == {"u5"}, "the test send counted against the cap"
    assert by_status(c.id)["skipped"] == {"u0"}
