import base64
import email
import hashlib
import hmac
import json
import time

import pytest
from sqlalchemy import bindparam, select

from dashboard import encryption
from dashboard.extensions import db
from dashboard.models import Campaign, Recipient
from dashboard.services import campaigns, channel_settings, lifecycle, recipients, users
from dashboard.services.actor import Actor
from tests.engine import drain_until_idle
from tests.sinks import HttpSink, SmtpBox
from tests.test_api_campaigns import make_template

ACTOR = Actor.system("test")
KEY = b"0123456789abcdef0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(KEY).decode()


@pytest.fixture
def sink(app):
    server = HttpSink()
    channel_settings.update("webhook", {"rateLimit": 5000, "settings": {"url": server.url, "secret": SECRET,
                                                                        "timeoutSeconds": 1}}, ACTOR)
    app.config["HERALD_RETRY_BASE_SECONDS"] = 0.2
    yield server
    app.config["HERALD_RETRY_BASE_SECONDS"] = 2.0
    server.close()


@pytest.fixture
def smtp(app):
    box = SmtpBox()
    channel_settings.update("email", {"rateLimit": 5000, "settings": {"smtpUrl": box.url,
                                                                      "sender": "news@herald.test"}}, ACTOR)
    app.config["HERALD_RETRY_BASE_SECONDS"] = 0.2
    yield box
    app.config["HERALD_RETRY_BASE_SECONDS"] = 2.0
    box.close()


def send_campaign(channel: str, user_ids: list[str], emails: dict | None = None, **extra) -> Campaign:
    make_template()
    c = campaigns.create({"name": "Ch", "templateId": "promo", "channel": channel,
                          "variables": {"offer": "10% off"}, **extra}, ACTOR)
    recipients.add_manual(c.id, user_ids, None, ACTOR)
    if emails:
        db.session.execute(Recipient.__table__.update().where(Recipient.user_id == bindparam("uid"))
                           .values(email=bindparam("mail")), [{"uid": u, "mail": m} for u, m in emails.items()])
        db.session.commit()
    lifecycle.send(c.id, None, ACTOR)
    return c


def final(campaign_id: int) -> Campaign:
    db.session.expire_all()
    return db.session.get(Campaign, campaign_id)


def recipient(user_id: str) -> Recipient:
    db.session.expire_all()
    return db.session.scalar(select(Recipient).where(Recipient.user_id == user_id))


def test_webhook_delivers_signed_payload(sink):
    c = send_campaign("webhook", ["w1", "w2"])
    drain_until_idle()
    assert final(c.id).status == "sent"
    request = sink.for_user("w1")[0]
    assert request["json"] == {"campaignId": c.id, "notificationId": recipient("w1").id, "userId": "w1",
                               "title": "Hi there", "body": "10% off ", "imageUrl": None, "actionUrl": None,
                               "variables": {"firstName": "there", "offer": "10% off"}}
    headers = request["headers"]
    assert headers["Idempotency-Key"] == f"{c.id}:w1"
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + request["body"]
    digest = hmac.new(KEY, signed, hashlib.sha256).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(digest).decode()
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    expected = "sha256=" + hmac.new(KEY, request["body"], hashlib.sha256).hexdigest()
    assert headers["X-Herald-Signature"] == expected  # deprecated, kept for one release


def test_transient_failures_retry_with_backoff_then_succeed(sink):
    sink.plan["flaky"] = [500, 503]
    c = send_campaign("webhook", ["flaky", "steady"])
    drain_until_idle()
    assert final(c.id).status == "sent"
    r = recipient("flaky")
    assert (r.status, r.attempts, r.last_error) == ("sent", 3, None)
    calls = sink.for_user("flaky")
    assert len(calls) == 3 and len(sink.for_user("steady")) == 1  # the others were not held up or resent
    gaps = [b["at"] - a["at"] for a, b in zip(calls, calls[1:], strict=False)]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4  # exponential backoff from a 0.2 s base
    keys = {c_["headers"]["Idempotency-Key"] for c_ in calls}
    assert keys == {f"{c.id}:flaky"}  # stable across retries


def test_retry_after_is_honoured(sink):
    sink.plan["limited"] = [(429, {"Retry-After": "1"})]
    c = send_campaign("webhook", ["limited"])
    drain_until_idle()
    calls = sink.for_user("limited")
    assert len(calls) == 2 and calls[1]["at"] - calls[0]["at"] >= 1.0
    assert final(c.id).status == "sent"


def test_permanent_failure_is_recorded_at_once(sink):
    sink.plan["gone"] = [400]
    c = send_campaign("webhook", ["gone", "fine"])
    drain_until_idle()
    r = recipient("gone")
    assert (r.status, r.attempts) == ("failed", 1) and r.last_error.startswith("HTTP 400")
    c = final(c.id)
    assert (c.status, c.sent, c.failed) == ("sent", 1, 1)


def test_timeout_is_transient(sink):
    sink.plan["slow"] = ["hang"]
    c = send_campaign("webhook", ["slow"])
    drain_until_idle(60)
    r = recipient("slow")
    assert r.status == "sent" and r.attempts == 2
    assert final(c.id).status == "sent"


def test_sink_down_for_good_fails_the_campaign(sink):
    sink.default = 503
    c = send_campaign("webhook", [f"d{i}" for i in range(220)])
    drain_until_idle(120)
    c = final(c.id)
    assert c.status == "failed" and "threshold" in c.failure_reason
    r = recipient("d5")
    assert r.status == "failed" and r.attempts == 5 and r.last_error.startswith("gave up after 5 attempts: HTTP 503")


def test_email_multipart_with_stable_message_id(smtp):
    users.upsert([{"userId": "dir", "email": "dir@example.com"}])
    c = send_campaign("email", ["e1", "dir", "noaddr"], emails={"e1": "e1@example.com"})
    drain_until_idle()
    c = final(c.id)
    assert (c.status, c.sent, c.failed) == ("sent", 2, 1)
    assert recipient("noaddr").last_error == "no email address"
    by_to = {m["to"][0]: email.message_from_string(m["data"]) for m in smtp.messages}
    assert set(by_to) == {"e1@example.com", "dir@example.com"}  # the directory supplied one address
    mail = by_to["e1@example.com"]
    assert mail["Subject"] == "Hi there" and mail["From"] == "news@herald.test"
    assert mail.get_content_type() == "text/plain" and mail.get_payload().strip() == "10% off"  # no html part
    digest = hashlib.sha256(f"{c.id}:e1".encode()).hexdigest()[:32]
    assert mail["Message-ID"] == f"<herald.{c.id}.{digest}@herald.test>"


def test_email_html_part_and_smtp_codes(smtp):
    make_template("rich", channels={"email": {"subject": "S {{ offer }}", "text": "T", "html": "<p>{{ offer }}</p>"}},
                  schema=[{"key": "offer", "type": "string"}])
    c = campaigns.create({"name": "R", "templateId": "rich", "channel": "email",
                          "variables": {"offer": "<b>&"}}, ACTOR)
    recipients.add_manual(c.id, ["ok", "bad", "later"], None, ACTOR)
    db.session.execute(Recipient.__table__.update().where(Recipient.user_id == bindparam("uid"))
                       .values(email=bindparam("mail")),
                       [{"uid": "ok", "mail": "ok@x.test"}, {"uid": "bad", "mail": "bad@x.test"},
                        {"uid": "later", "mail": "later@x.test"}])
    db.session.commit()
    lifecycle.send(c.id, None, ACTOR)
    drain_until_idle()
    assert recipient("bad").status == "failed" and "550" in recipient("bad").last_error
    later = recipient("later")
    assert (later.status, later.attempts) == ("sent", 3)  # 451 twice, then accepted
    mail = email.message_from_string(next(m["data"] for m in smtp.messages if m["to"] == ["ok@x.test"]))
    assert mail.is_multipart() and mail.get_content_type() == "multipart/alternative"
    html = [p for p in mail.walk() if p.get_content_type() == "text/html"][0].get_payload(decode=True).decode()
    assert "<p>&lt;b&gt;&amp;</p>" in html  # values escaped inside the author's HTML


def test_unconfigured_channel_refuses_to_send(app):
    make_template()
    c = campaigns.create({"name": "x", "templateId": "promo", "channel": "webhook", "variables": {"offer": "x"}},
                         ACTOR)
    recipients.add_manual(c.id, ["u1"], None, ACTOR)
    from dashboard.errors import ValidationError

    with pytest.raises(ValidationError, match="no URL configured"):
        lifecycle.send(c.id, None, ACTOR)


def test_channel_settings_api_hides_secrets_and_is_admin_only(client, api_key):
    admin = {"Authorization": f"Bearer {api_key('admin')}"}
    marketer = {"Authorization": f"Bearer {api_key('marketer')}"}
    body = {"enabled": True, "rateLimit": 250, "settings": {"url": "https://hooks.example.com/x", "secret": "zzz"}}
    response = client.put("/api/v1/channels/webhook", json=body, headers=admin)
    assert response.status_code == 200
    text = json.dumps(response.get_json())
    assert "zzz" not in text and response.get_json()["secretsSet"] == ["secret"]
    assert response.get_json()["settings"] == {"url": "https://hooks.example.com/x"}
    assert client.put("/api/v1/channels/webhook", json=body, headers=marketer).status_code == 403
    listing = client.get("/api/v1/channels", headers=marketer).get_json()
    assert "zzz" not in json.dumps(listing) and {c["type"] for c in listing["items"]} == {"in_app", "email", "webhook"}
    bad = client.put("/api/v1/channels/webhook", json={"rateLimit": -1, "settings": {"url": "ftp://x"}}, headers=admin)
    assert bad.status_code == 400 and len(bad.get_json()["error"]["details"]) == 2
    assert client.put("/api/v1/channels/sms", json={}, headers=admin).status_code == 404


def test_throttle_holds_across_two_worker_processes(app, sink):
    from tests.engine import start_worker

    channel_settings.update("webhook", {"rateLimit": 50}, ACTOR)
    app.config["HERALD_BATCH_CHUNK"] = 25
    c = send_campaign("webhook", [f"t{i}" for i in range(200)])
    app.config["HERALD_BATCH_CHUNK"] = 1000
    workers = [start_worker(app, HERALD_BATCH_CHUNK="25") for _ in range(2)]
    try:
        deadline = time.monotonic() + 60
        while final(c.id).status == "sending" and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        import os
        import signal

        for w in workers:
            os.killpg(w.pid, signal.SIGTERM)
        for w in workers:
            w.wait(timeout=20)
    assert final(c.id).status == "sent"
    stamps = sorted(r["at"] for r in sink.requests)
    assert len(stamps) == 200
    busiest = max(sum(1 for t in stamps if s <= t < s + 1.0) for s in stamps)
    assert busiest <= 55, busiest  # 50/s with 10% slack, across both workers
    assert stamps[-1] - stamps[0] >= 3.0  # 200 at 50/s cannot take less than ~4 s


def test_admin_channel_page_saves_hides_secret_and_sends_tests(client, logged_in, sink, smtp):
    logged_in("admin")
    from tests.conftest import csrf_from

    page = client.get("/admin/channels").get_data(as_text=True)
    assert SECRET not in page and "saved — type to replace" in page
    token = csrf_from(page)
    response = client.post("/admin/channels/webhook", data={"csrf_token": token, "enabled": "y", "rateLimit": "120",
                                                            "url": sink.url, "secret": "", "timeoutSeconds": "2"})
    page = client.get(response.headers["Location"].split("#")[0]).get_data(as_text=True)
    assert "webhook settings saved." in page and SECRET not in page
    stored = channel_settings.get("webhook").secrets["secret"]
    assert encryption.decrypt(stored) == SECRET  # an empty field kept the secret
    assert channel_settings.get("webhook").rate_limit == 120
    response = client.post("/admin/channels/webhook/test", data={"csrf_token": token, "target": "user-42"})
    assert f"Test delivered to {sink.url} (userId user-42)." in client.get(
        response.headers["Location"].split("#")[0]).get_data(as_text=True)
    assert sink.requests[-1]["json"]["userId"] == "user-42" and sink.requests[-1]["json"]["test"] is True
    response = client.post("/admin/channels/webhook/test", data={"csrf_token": token, "target": sink.url})
    assert "Test not sent: the userId" in client.get(response.headers["Location"].split("#")[0]).get_data(
        as_text=True)  # a URL is not a userId: the test goes to the saved URL
    sink.default, sink.error_body = 400, b"<html>internal stack trace</html>"
    response = client.post("/admin/channels/webhook/test", data={"csrf_token": token, "target": "user-42"})
    page = client.get(response.headers["Location"].split("#")[0]).get_data(as_text=True)
    assert "failed (permanent): HTTP 400 Bad Request" in page and "stack trace" not in page
    response = client.post("/admin/channels/email/test", data={"csrf_token": token, "target": "ops@example.com"})
    assert "Test delivered to ops@example.com." in client.get(response.headers["Location"].split("#")[0]).get_data(
        as_text=True)
    assert smtp.messages[-1]["to"] == ["ops@example.com"]
    bad = client.post("/admin/channels/webhook", data={"csrf_token": token, "rateLimit": "fast", "url": "ftp://x"})
    assert "Not saved" in client.get(bad.headers["Location"].split("#")[0]).get_data(as_text=True)


def test_channels_say_not_configured_until_they_are(app, client, logged_in, monkeypatch):
    logged_in("admin")
    monkeypatch.setitem(app.config, "SMTP_URL", "")
    assert [c["configured"] for c in map(channel_settings.public, map(channel_settings.get, channel_settings.TYPES))] \
        == [True, False, False]
    assert channel_settings.public(channel_settings.get("email"))["missing"] == ["SMTP URL", "sender address"]
    page = client.get("/admin/channels").get_data(as_text=True)
    assert page.count(">not configured</span>") == 2 and "add the URL and signing secret below" in page
    assert "Send a test email to" in page and 'placeholder="you@example.com"' in page
    assert "Send a test webhook for userId" in page and 'placeholder="user-123"' in page
    from tests.conftest import csrf_from
    response = client.post("/admin/channels/webhook/test", data={"csrf_token": csrf_from(page), "target": "u-1"})
    assert "not configured yet (missing: URL, signing secret)" in client.get(
        response.headers["Location"].split("#")[0]).get_data(as_text=True)


@pytest.mark.parametrize("role", ["marketer", "support"])
def test_channel_page_is_admin_only(client, logged_in, role):
    logged_in(role)
    assert client.get("/admin/channels").status_code == 403


@pytest.mark.parametrize("kind,settings,field", [
    ("webhook", {"url": "http://[::1"}, "settings.url"),
    ("webhook", {"url": "https://hooks.example.com:99999/"}, "settings.url"),
    ("email", {"smtpUrl": "smtp://[::1"}, "settings.smtpUrl"),
    ("webhook", {"secret": 5}, "settings.secret"),
    ("webhook", {"timeoutSeconds": True}, "settings.timeoutSeconds"),
    ("email", {"sender": ["x"]}, "settings.sender"),
])
def test_malformed_channel_settings_are_a_400_naming_the_field(client, api_key, kind, settings, field):
    response = client.put(f"/api/v1/channels/{kind}", json={"settings": settings},
                          headers={"Authorization": f"Bearer {api_key('admin')}"})
    assert response.status_code == 400
    assert [d["field"] for d in response.get_json()["error"]["details"]] == [field]
