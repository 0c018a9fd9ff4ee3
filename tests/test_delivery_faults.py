"""The fault matrix of the delivery issue, per channel (in-app, email to a real SMTP server,
webhook to a real HTTP server), in batch mode with real worker processes: a poisoned
recipient, kill -9 mid-send, cancel mid-send, a chunk job that always raises. After every
case the campaign's counters equal its recipient rows and none is negative."""

from __future__ import annotations

import collections
import os
import time

import pytest
from sqlalchemy import bindparam, func, select, text

from dashboard.extensions import db
from dashboard.models import Campaign, Notification, Recipient
from dashboard.services import campaigns, channel_settings, lifecycle, recipients
from dashboard.services.actor import Actor
from tests.engine import kill_9, start_worker, wait_for
from tests.sinks import HttpSink, SmtpBox
from tests.test_api_campaigns import make_template

ACTOR = Actor.system("test")
CHANNELS = ("in_app", "email", "webhook")
WORKER_ENV = {"HERALD_SLICE_SECONDS": "2", "HERALD_RETRY_BASE_SECONDS": "0.2", "HERALD_SWEEP_SECONDS": "1",
              "HERALD_WORKER_TTL": "20", "HERALD_BATCH_CHUNK": "500"}

pytestmark = pytest.mark.skipif(os.environ.get("HERALD_TEST_DB", "sqlite") != "postgresql",
                                reason="the fault matrix runs on PostgreSQL (the production database)")


def assert_counters_match_rows(campaign_id: int) -> Campaign:
    db.session.expire_all()
    c = db.session.get(Campaign, campaign_id)
    rows = dict(db.session.execute(select(Recipient.status, func.count()).where(Recipient.campaign_id == campaign_id)
                                   .group_by(Recipient.status)).all())
    counters = {"pending": c.pending, "sent": c.sent, "failed": c.failed, "skipped": c.skipped}
    assert counters == {k: rows.get(k, 0) for k in counters}, f"counters {counters} != rows {rows}"
    assert min(counters.values()) >= 0 and sum(counters.values()) == c.total
    return c


def status_of(campaign_id: int) -> str:
    db.session.expire_all()
    return db.session.get(Campaign, campaign_id).status


def sent_count(campaign_id: int) -> int:
    db.session.expire_all()
    return db.session.get(Campaign, campaign_id).sent


class Rig:
    """One channel wired to a real sink, and what each user received."""

    def __init__(self, app, channel: str, rate: float):
        self.app, self.channel = app, channel
        self.smtp = self.http = None
        if channel == "email":
            self.smtp = SmtpBox()
            settings = {"smtpUrl": self.smtp.url, "sender": "news@herald.test"}
        elif channel == "webhook":
            self.http = HttpSink()
            settings = {"url": self.http.url, "secret": "s3cret", "timeoutSeconds": 2}
        else:
            settings = {}
        channel_settings.update(channel, {"rateLimit": rate, "settings": settings}, ACTOR)
        self.step = max(1, int(rate / 20))  # one bucket step

    def deliveries(self, campaign_id: int) -> list[tuple[float | None, str]]:
        """(when, userId) of every delivery the sink saw (in-app: feed rows; no clock)."""
        if self.smtp:
            return [(m["at"], m["to"][0].split("@")[0]) for m in self.smtp.messages]
        if self.http:
            return [(r["at"], r["json"]["userId"]) for r in self.http.requests]
        rows = db.session.execute(select(Notification.user_id).where(Notification.campaign_id == campaign_id)).all()
        return [(None, r.user_id) for r in rows]

    def per_user(self, campaign_id: int) -> collections.Counter:
        return collections.Counter(user for _, user in self.deliveries(campaign_id))

    def close(self):
        if self.smtp:
            self.smtp.close()
        if self.http:
            self.http.close()


@pytest.fixture
def rig(app, request, tmp_path, monkeypatch):
    monkeypatch.setenv("HERALD_WORKER_LOG", str(tmp_path / "worker.log"))
    app.config["HERALD_STALL_SECONDS"] = 3
    rigs = []

    def make(channel: str, rate: float = 5000) -> Rig:
        r = Rig(app, channel, rate)
        rigs.append(r)
        return r

    yield make
    for r in rigs:
        r.close()
    app.config["HERALD_STALL_SECONDS"] = 30


@pytest.fixture
def workers(app):
    procs = []

    def start():
        proc = start_worker(app, **WORKER_ENV)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            kill_9(proc)


def make_send(channel: str, n: int) -> Campaign:
    make_template(channels={"in_app": {"title": "Hi {{ firstName }}", "body": "{{ offer }}"},
                            "email": {"subject": "Hi {{ firstName }}", "text": "{{ offer }}"}})
    c = campaigns.create({"name": f"Faults {channel}", "templateId": "promo", "channel": channel,
                          "variables": {"offer": "10% off"}}, ACTOR)
    recipients.add_manual(c.id, [f"u{i}" for i in range(n)], None, ACTOR)
    if channel == "email":
        db.session.execute(text("UPDATE recipients SET email = user_id || '@example.com' WHERE campaign_id = :c"),
                           {"c": c.id})
        db.session.commit()
    return c


def poison(campaign_id: int, user_id: str, *, variables: dict | None = None, new_user_id: str | None = None):
    """Written straight into the database: the engine must not rely on the API's input checks."""
    values = {}
    if variables is not None:
        values["variables"] = variables
    if new_user_id is not None:
        values["user_id"] = new_user_id
    db.session.execute(Recipient.__table__.update().where(Recipient.campaign_id == campaign_id,
                                                          Recipient.user_id == bindparam("uid")).values(**values),
                       [{"uid": user_id}])
    db.session.commit()


RAISER = {  # a value the channel itself raises on, past the engine's own checks
    "in_app": ({"offer": "bad \ud800 text"}, None, "could not store the notification"),
    "email": ({"offer": "x", "firstName": "bad \ud800"}, None, "could not build the email"),
    "webhook": (None, "u2\nX-Evil: 1", "the request could not be sent"),
}


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_poisoned_recipient_fails_alone(rig, workers, channel):
    n = 300
    sink = rig(channel)
    c = make_send(channel, n)
    poison(c.id, "u1", variables={"offer": "has a \x00 NUL"})
    raise_vars, raise_uid, raise_reason = RAISER[channel]
    poison(c.id, "u2", variables=raise_vars, new_user_id=raise_uid)
    poison(c.id, "u3", variables={"offer": "x", "firstName": "Ann\nBcc: x@evil.test\r\u2028Smith"})
    workers()
    lifecycle.send(c.id, None, ACTOR)
    wait_for(lambda: status_of(c.id) in ("sent", "failed"), 60, "the campaign to finish")
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.sent, c.failed) == ("sent", n - 2, 2)
    errors = dict(db.session.execute(select(Recipient.user_id, Recipient.last_error).where(
        Recipient.campaign_id == c.id, Recipient.status == "failed")).all())
    assert errors["u1"].endswith("a value contains a NUL character"), errors
    bad_uid = raise_uid or "u2"
    assert errors[bad_uid].startswith(raise_reason), errors
    got = sink.per_user(c.id)
    assert set(got.values()) == {1}, f"not exactly once: {got.most_common(3)}"
    assert set(got) == {f"u{i}" for i in range(n)} - {"u1", "u2"}
    if channel == "email":  # the line break folded into the subject: no header was injected
        mail = next(m["data"] for m in sink.smtp.messages if m["to"] == ["u3@example.com"])
        assert "Subject: Hi Ann Bcc: x@evil.test Smith" in mail and "\nBcc:" not in mail
    elif channel == "webhook":
        body = next(r["json"] for r in sink.http.requests if r["json"]["userId"] == "u3")
        assert body["title"] == "Hi Ann Bcc: x@evil.test Smith"
    else:
        title = db.session.scalar(select(Notification.title).where(Notification.user_id == "u3"))
        assert title == "Hi Ann Bcc: x@evil.test Smith"


@pytest.mark.parametrize("channel", CHANNELS)
def test_kill_9_mid_send_completes_with_bounded_duplicates(rig, workers, channel, capsys):
    n, rate = 1200, 200.0
    sink = rig(channel, rate)
    c = make_send(channel, n)
    worker = workers()
    lifecycle.send(c.id, None, ACTOR)
    wait_for(lambda: sent_count(c.id) >= 0.3 * n, 60, "30% sent")
    kill_9(worker)  # the worker, its scheduler and its work horse, mid-step
    assert status_of(c.id) == "sending" and sent_count(c.id) < n, "finished before the kill; nothing was tested"
    assert_counters_match_rows(c.id)
    workers()
    wait_for(lambda: status_of(c.id) == "sent", 90, "the send to complete after a restart")
    c = assert_counters_match_rows(c.id)
    assert (c.sent, c.failed, c.skipped) == (n, 0, 0)
    got = sink.per_user(c.id)
    assert set(got) == {f"u{i}" for i in range(n)}
    duplicates = sum(k - 1 for k in got.values())
    with capsys.disabled():
        print(f"\n  {channel}: duplicates after one kill -9 = {duplicates} (bound: one bucket step = {sink.step})")
    if channel == "in_app":
        assert duplicates == 0
    else:
        assert duplicates <= sink.step


@pytest.mark.parametrize("channel", CHANNELS)
def test_cancel_mid_send_stops_every_channel_within_a_second(rig, workers, channel):
    n, rate = 1500, 200.0
    sink = rig(channel, rate)
    c = make_send(channel, n)
    workers()
    lifecycle.send(c.id, None, ACTOR)
    wait_for(lambda: sent_count(c.id) >= 200, 60, "200 sent")
    before = len(sink.deliveries(c.id))
    lifecycle.cancel(c.id, ACTOR)
    answered = time.monotonic()
    at_answer = len(sink.deliveries(c.id))
    time.sleep(3)
    c = assert_counters_match_rows(c.id)
    assert c.status == "cancelled" and c.pending == 0 and c.skipped > 0
    deliveries = sink.deliveries(c.id)
    after = len(deliveries) - at_answer
    assert after <= rate * 1.0 + sink.step, f"{after} deliveries after cancel answered (rate {rate:g}/s)"
    if channel != "in_app":
        late = [at for at, _ in deliveries if at > answered + 1.0]
        assert not late, f"{len(late)} deliveries more than 1 s after cancel answered"
    assert before <= at_answer
    delivered = {user for _, user in deliveries}
    sent_rows = set(db.session.scalars(select(Recipient.user_id).where(Recipient.campaign_id == c.id,
                                                                       Recipient.status == "sent")))
    assert delivered == sent_rows, "every delivered recipient reads sent, and only those"
    time.sleep(1)
    assert len(sink.deliveries(c.id)) == len(deliveries), "nothing more goes out later"


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_chunk_job_that_always_raises_fails_its_recipients_after_5_tries(rig, workers, channel):
    n = 300
    rig(channel)
    c = make_send(channel, n)
    # Every attempt to record a delivery for this campaign raises inside the chunk job.
    db.session.execute(text(f"""
        CREATE OR REPLACE FUNCTION herald_test_refuse() RETURNS trigger AS $$
        BEGIN RAISE EXCEPTION 'injected fault: recording refused'; END $$ LANGUAGE plpgsql;
        DROP TRIGGER IF EXISTS herald_test_refuse ON recipients;
        CREATE TRIGGER herald_test_refuse BEFORE UPDATE ON recipients FOR EACH ROW
        WHEN (NEW.status = 'sent' AND NEW.campaign_id = {int(c.id)}) EXECUTE FUNCTION herald_test_refuse();"""))
    db.session.commit()
    try:
        workers()
        lifecycle.send(c.id, None, ACTOR)
        wait_for(lambda: status_of(c.id) in ("sent", "failed"), 60, "the campaign to reach a final status")
    finally:
        db.session.rollback()
        db.session.execute(text("DROP TRIGGER IF EXISTS herald_test_refuse ON recipients"))
        db.session.commit()
    c = assert_counters_match_rows(c.id)
    assert c.failed == n and c.status == "failed"
    errors = set(db.session.scalars(select(Recipient.last_error).where(Recipient.campaign_id == c.id)))
    assert len(errors) == 1
    error = errors.pop()
    assert error.startswith("delivery job failed 5 times; last error:") and "injected fault" in error, error
    assert "failed" in (c.failure_reason or "")
