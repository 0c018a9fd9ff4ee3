"""Standard Webhooks: a receiver verifies Herald's real webhooks with the `standardwebhooks`
package; the signing secret is generated, shown once, rotatable and required."""

import json
from datetime import UTC, datetime, timedelta

import pytest
import standardwebhooks.webhooks
from sqlalchemy import select
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from dashboard.channels import ChannelUnavailable
from dashboard.errors import ValidationError
from dashboard.extensions import db
from dashboard.models import ChannelConfig
from dashboard.services import campaigns, channel_settings, lifecycle, recipients
from dashboard.services.actor import Actor
from tests.conftest import csrf_from
from tests.engine import drain_until_idle
from tests.sinks import HttpSink
from tests.test_api_campaigns import make_template
from tests.test_channels import final, recipient

ACTOR = Actor.system("test")


@pytest.fixture
def sink(app):
    server = HttpSink()
    app.config["HERALD_RETRY_BASE_SECONDS"] = 0.2
    yield server
    app.config["HERALD_RETRY_BASE_SECONDS"] = 2.0
    server.close()


def configure(url: str) -> str:
    """Save the webhook channel as an admin would (URL only) and return the secret shown once."""
    saved = channel_settings.update("webhook", {"rateLimit": 5000, "settings": {"url": url, "timeoutSeconds": 2}},
                                    ACTOR)
    assert saved.new_secret and saved.new_secret.startswith("whsec_")
    return saved.new_secret


def send(user_ids: list[str]):
    make_template()
    c = campaigns.create({"name": "Hooks", "templateId": "promo", "channel": "webhook",
                          "variables": {"offer": "10% off"}}, ACTOR)
    recipients.add_manual(c.id, user_ids, None, ACTOR)
    lifecycle.send(c.id, None, ACTOR)
    drain_until_idle()
    return final(c.id)


def test_a_receiver_verifies_herald_webhooks_with_standardwebhooks(sink, monkeypatch):
    secret = configure(sink.url)
    c = send(["r1", "r2"])
    assert (c.status, c.sent) == ("sent", 2)
    receiver = Webhook(secret)
    for request in sink.requests:
        assert receiver.verify(request["body"], request["headers"]) == request["json"]
    request = sink.for_user("r1")[0]
    assert request["json"]["userId"] == "r1" and request["headers"]["Idempotency-Key"] == f"{c.id}:r1"

    tampered = request["body"].replace(b'"r1"', b'"r2"')
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        receiver.verify(tampered, request["headers"])
    with pytest.raises(WebhookVerificationError):
        Webhook(channel_settings.rotate_secret("webhook", ACTOR).new_secret).verify(request["body"],
                                                                                    request["headers"])

    class SixMinutesLater(datetime):  # the same request replayed past the library's 5-minute tolerance
        @classmethod
        def now(cls, tz=None):
            return datetime.now(UTC) + timedelta(minutes=6)

    monkeypatch.setattr(standardwebhooks.webhooks, "datetime", SixMinutesLater)
    with pytest.raises(WebhookVerificationError, match="too old"):
        receiver.verify(request["body"], request["headers"])


def test_retries_keep_the_webhook_id_and_are_signed_afresh(sink):
    secret = configure(sink.url)
    sink.plan["flaky"] = [503]
    send(["flaky", "other"])
    first, second = sink.for_user("flaky")
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"]  # receivers dedupe on it
    assert first["headers"]["webhook-id"] != sink.for_user("other")[0]["headers"]["webhook-id"]
    assert first["headers"]["webhook-id"].startswith("msg_")
    for attempt in (first, second):
        Webhook(secret).verify(attempt["body"], attempt["headers"])


def test_a_failed_delivery_keeps_the_status_never_the_answer_body(sink, client, api_key):
    configure(sink.url)
    sink.plan["gone"] = [400]
    sink.error_body = b"Traceback: password=hunter2 at db.internal"
    c = send(["gone", "fine"])
    assert recipient("gone").last_error == "HTTP 400 Bad Request"
    listing = client.get(f"/api/v1/campaigns/{c.id}/recipients",
                         headers={"Authorization": f"Bearer {api_key('support')}"})
    assert listing.status_code == 200 and "hunter2" not in listing.get_data(as_text=True)


def test_the_signing_secret_is_generated_shown_once_and_rotatable_over_the_api(client, api_key, sink):
    admin = {"Authorization": f"Bearer {api_key('admin')}"}
    first = client.put("/api/v1/channels/webhook", json={"settings": {"url": sink.url}}, headers=admin)
    assert first.status_code == 200 and first.headers["Cache-Control"] == "no-store"
    secret = first.get_json()["signingSecret"]
    assert secret.startswith("whsec_") and first.get_json()["secretsSet"] == ["secret"]
    again = client.put("/api/v1/channels/webhook", json={"rateLimit": 300}, headers=admin).get_json()
    assert "signingSecret" not in again  # generated once; afterwards write-only
    for path in ("/api/v1/channels/webhook", "/api/v1/channels"):
        answer = client.get(path, headers=admin).get_data(as_text=True)
        assert secret not in answer and "signingSecret" not in answer

    marketer = {"Authorization": f"Bearer {api_key('marketer')}"}
    assert client.post("/api/v1/channels/webhook/secret", headers=marketer).status_code == 403
    assert client.post("/api/v1/channels/email/secret", headers=admin).status_code == 400
    assert client.post("/api/v1/channels/sms/secret", headers=admin).status_code == 404
    rotated = client.post("/api/v1/channels/webhook/secret", headers=admin)
    assert rotated.status_code == 200 and rotated.headers["Cache-Control"] == "no-store"
    new_secret = rotated.get_json()["signingSecret"]
    assert new_secret.startswith("whsec_") and new_secret != secret

    send(["after-rotation"])
    request = sink.requests[-1]
    Webhook(new_secret).verify(request["body"], request["headers"])
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(request["body"], request["headers"])


def test_a_supplied_secret_must_be_well_formed_and_an_earlier_plain_one_still_signs(client, api_key, sink):
    admin = {"Authorization": f"Bearer {api_key('admin')}"}
    bad = client.put("/api/v1/channels/webhook", json={"settings": {"url": sink.url, "secret": "whsec_!!notbase64"}},
                     headers=admin)
    assert bad.status_code == 400 and bad.get_json()["error"]["details"][0]["field"] == "settings.secret"
    short = client.put("/api/v1/channels/webhook", json={"settings": {"url": sink.url, "secret": "whsec_c2hvcnQ="}},
                       headers=admin)
    assert short.status_code == 400 and "24 to 64 bytes" in json.dumps(short.get_json())
    # a secret of an earlier version (not whsec_) is its own bytes: receivers pass Webhook(b"...")
    ok = client.put("/api/v1/channels/webhook", json={"settings": {"url": sink.url, "secret": "legacy-shared"}},
                    headers=admin)
    assert ok.status_code == 200 and "signingSecret" not in ok.get_json()
    send(["old"])
    request = sink.requests[-1]
    Webhook(b"legacy-shared").verify(request["body"], request["headers"])


def test_without_a_signing_secret_the_webhook_channel_cannot_be_used(sink):
    db.session.add(ChannelConfig(type="webhook", enabled=True, rate_limit=100, settings={"url": sink.url},
                                 secrets={}))  # as an earlier version left it: a URL, no secret
    db.session.commit()
    with pytest.raises(ChannelUnavailable, match="no signing secret"):
        channel_settings.build("webhook")
    make_template()
    c = campaigns.create({"name": "x", "templateId": "promo", "channel": "webhook", "variables": {"offer": "x"}},
                         ACTOR)
    recipients.add_manual(c.id, ["u1"], None, ACTOR)
    with pytest.raises(ValidationError, match="no signing secret"):
        lifecycle.send(c.id, None, ACTOR)
    assert channel_settings.update("webhook", {"enabled": True}, ACTOR).new_secret  # saving it generates one
    channel_settings.build("webhook").close()


def test_admin_page_shows_a_generated_secret_once_and_rotates_it(client, logged_in, sink):
    logged_in("admin")
    token = csrf_from(client.get("/admin/channels").get_data(as_text=True))
    response = client.post("/admin/channels/webhook", data={"csrf_token": token, "enabled": "y", "rateLimit": "100",
                                                            "url": sink.url, "timeoutSeconds": "2"})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    stored = db.session.scalar(select(ChannelConfig).where(ChannelConfig.type == "webhook"))
    secret = channel_settings._secrets(stored)["secret"]
    assert f'value="{secret}"' in page and "will not show it again" in page and "webhook settings saved." in page
    page = client.get("/admin/channels").get_data(as_text=True)
    assert secret not in page and "Rotate signing secret" in page

    rotated = client.post("/admin/channels/webhook/secret", data={"csrf_token": token})
    assert rotated.status_code == 200
    db.session.expire_all()
    new_secret = channel_settings._secrets(db.session.get(ChannelConfig, "webhook"))["secret"]
    assert new_secret != secret and f'value="{new_secret}"' in rotated.get_data(as_text=True)
    assert client.post("/admin/channels/webhook", data={"csrf_token": token, "rateLimit": "100", "enabled": "y",
                                                        "url": sink.url}).status_code == 302  # no new secret
