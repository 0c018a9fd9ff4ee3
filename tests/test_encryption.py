"""Channel secrets at rest: Fernet-encrypted in the database, readable after an upgrade from
plaintext, and a clear error (not a crash) when the key no longer fits."""

import json

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from dashboard import encryption
from dashboard.channels import ChannelUnavailable
from dashboard.channels.webhook import secret_key
from dashboard.extensions import db
from dashboard.models import ChannelConfig
from dashboard.services import channel_settings
from tests.test_webhooks import ACTOR

SMTP_URL = "smtp+starttls://mailer:Pa55word-xyz@mail.example.com:587"


def raw_secrets(kind: str) -> str:
    """The secrets column as the database holds it."""
    return db.session.execute(text("SELECT CAST(secrets AS TEXT) FROM channel_configs WHERE type = :kind"),
                              {"kind": kind}).scalar_one()


def test_the_database_row_holds_no_plaintext_secret():
    channel_settings.update("email", {"settings": {"smtpUrl": SMTP_URL, "sender": "news@example.com"}}, ACTOR)
    webhook_secret = channel_settings.update("webhook", {"settings": {"url": "https://hooks.example.com/h"}},
                                             ACTOR).new_secret
    email_row, webhook_row = raw_secrets("email"), raw_secrets("webhook")
    assert "Pa55word" not in email_row and "mailer" not in email_row and "mail.example.com" not in email_row
    assert webhook_secret not in webhook_row and webhook_secret[len("whsec_"):] not in webhook_row
    assert json.loads(email_row)["smtpUrl"].startswith("fernet:")
    assert json.loads(webhook_row)["secret"].startswith("fernet:")
    # … and the channels still get the real values
    assert channel_settings.build("email").server["password"] == "Pa55word-xyz"
    assert channel_settings.build("webhook").key == secret_key(webhook_secret)
    assert "fernet" not in json.dumps(channel_settings.public(channel_settings.get("email")))


def test_plaintext_from_an_earlier_version_keeps_working_and_is_encrypted_on_the_next_save(client, logged_in):
    db.session.add_all([
        ChannelConfig(type="email", enabled=True, rate_limit=100, settings={"sender": "news@example.com"},
                      secrets={"smtpUrl": SMTP_URL}),
        ChannelConfig(type="webhook", enabled=True, rate_limit=100, settings={"url": "https://hooks.example.com/h"},
                      secrets={"secret": "old-shared-secret"})])
    db.session.commit()
    assert channel_settings.build("email").server["password"] == "Pa55word-xyz"
    assert channel_settings.build("webhook").key == b"old-shared-secret"  # what X-Herald-Signature used
    logged_in("admin")
    page = client.get("/admin/channels").get_data(as_text=True)
    assert page.count("Stored unencrypted by an earlier version") == 2 and "Pa55word" not in page

    channel_settings.update("email", {"rateLimit": 50}, ACTOR)
    channel_settings.update("webhook", {"rateLimit": 50}, ACTOR)
    assert "Pa55word" not in raw_secrets("email") and "old-shared-secret" not in raw_secrets("webhook")
    assert channel_settings.build("email").server["password"] == "Pa55word-xyz"
    assert channel_settings.build("webhook").key == b"old-shared-secret"
    assert "Stored unencrypted" not in client.get("/admin/channels").get_data(as_text=True)


def test_an_explicit_key_takes_over_and_a_lost_key_is_a_clear_error(app, client, logged_in, monkeypatch):
    channel_settings.update("email", {"settings": {"smtpUrl": SMTP_URL, "sender": "n@example.com"}}, ACTOR)
    monkeypatch.setitem(app.config, "HERALD_ENCRYPTION_KEY", Fernet.generate_key().decode())
    assert channel_settings.build("email").server["password"] == "Pa55word-xyz"  # the derived key still reads
    channel_settings.update("email", {"rateLimit": 10}, ACTOR)  # re-encrypted under the explicit key
    monkeypatch.setitem(app.config, "HERALD_ENCRYPTION_KEY", "")  # the key was lost
    with pytest.raises(ChannelUnavailable, match="SMTP URL cannot be read.*SECRET_KEY or HERALD_ENCRYPTION_KEY"):
        channel_settings.build("email")
    logged_in("admin")
    assert client.get("/admin/channels").status_code == 200  # the page still works to enter it again
    channel_settings.update("email", {"settings": {"smtpUrl": SMTP_URL}}, ACTOR)
    assert channel_settings.build("email").server["password"] == "Pa55word-xyz"


def test_a_malformed_encryption_key_says_what_it_must_be(app, monkeypatch):
    monkeypatch.setitem(app.config, "HERALD_ENCRYPTION_KEY", "not-a-key")
    with pytest.raises(RuntimeError, match="HERALD_ENCRYPTION_KEY must be a Fernet key"):
        encryption.encrypt("x")
