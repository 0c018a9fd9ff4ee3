"""Channel settings (admin): enabled, rate limit, settings; secrets are write-only."""

from __future__ import annotations

from flask import current_app

from dashboard.channels.base import ChannelUnavailable
from dashboard.channels.email import EmailChannel, parse_smtp_url
from dashboard.channels.in_app import InAppChannel
from dashboard.channels.webhook import WebhookChannel
from dashboard.errors import NotFound, ValidationError
from dashboard.extensions import db
from dashboard.models import ChannelConfig, utcnow
from dashboard.services import audit
from dashboard.services.actor import Actor

TYPES = ("in_app", "email", "webhook")
# Shipped limits (messages/s): in-app is a database write, sized so two workers still scale.
DEFAULT_RATE = {"in_app": 50000.0, "email": 100.0, "webhook": 200.0}
PLAIN = {"in_app": (), "email": ("sender",), "webhook": ("url", "timeoutSeconds")}
SECRET = {"in_app": (), "email": ("smtpUrl",), "webhook": ("secret",)}


def get(kind: str) -> ChannelConfig:
    if kind not in TYPES:
        raise NotFound(f'No channel "{kind}"; use in_app, email or webhook.')
    config = db.session.get(ChannelConfig, kind)
    if config is None:
        config = ChannelConfig(type=kind, enabled=True, rate_limit=DEFAULT_RATE[kind], settings={}, secrets={})
    return config


def public(config: ChannelConfig) -> dict:
    secrets = dict(config.secrets or {})
    if config.type == "email" and not secrets.get("smtpUrl") and current_app.config.get("SMTP_URL"):
        secrets["smtpUrl"] = "(from SMTP_URL)"
    return {"type": config.type, "enabled": config.enabled, "rateLimit": config.rate_limit,
            "settings": dict(config.settings or {}), "secretsSet": sorted(k for k, v in secrets.items() if v)}


def update(kind: str, data: dict, actor: Actor) -> ChannelConfig:
    config = get(kind)
    errors = []
    if "enabled" in data:
        if not isinstance(data["enabled"], bool):
            errors.append({"field": "enabled", "message": "must be true or false"})
    rate = data.get("rateLimit", config.rate_limit)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 100_000:
        errors.append({"field": "rateLimit", "message": "must be a number of messages per second, 0 < n ≤ 100000"})
    settings = data.get("settings") or {}
    if not isinstance(settings, dict):
        errors.append({"field": "settings", "message": "must be an object"})
        settings = {}
    unknown = set(settings) - set(PLAIN[kind]) - set(SECRET[kind])
    for key in sorted(unknown):
        errors.append({"field": f"settings.{key}", "message": f"not a setting of the {kind} channel"})
    url = settings.get("url")
    if url and not str(url).startswith(("http://", "https://")):
        errors.append({"field": "settings.url", "message": "must be an http(s) URL"})
    smtp = settings.get("smtpUrl")
    if smtp:
        try:
            parse_smtp_url(smtp)
        except ChannelUnavailable as err:
            errors.append({"field": "settings.smtpUrl", "message": str(err)})
    timeout = settings.get("timeoutSeconds")
    if timeout not in (None, "") and (not isinstance(timeout, (int, float)) or not 0 < timeout <= 60):
        errors.append({"field": "settings.timeoutSeconds", "message": "must be between 0 and 60"})
    if errors:
        raise ValidationError(f"{errors[0]['field']}: {errors[0]['message']}", errors)
    config.enabled = data.get("enabled", config.enabled)
    config.rate_limit = float(rate)
    plain = dict(config.settings or {})
    secrets = dict(config.secrets or {})
    for key in PLAIN[kind]:
        if key in settings:
            plain[key] = settings[key]
    for key in SECRET[kind]:
        if settings.get(key):  # empty keeps the stored secret; secrets are never read back
            secrets[key] = settings[key]
    config.settings, config.secrets, config.updated_at = plain, secrets, utcnow()
    db.session.add(config)
    audit.record(actor, "channel.updated", "channel", kind,
                 details={"enabled": config.enabled, "rateLimit": config.rate_limit,
                          "settings": sorted(k for k in settings if k in PLAIN[kind]),
                          "secretsChanged": sorted(k for k in settings if k in SECRET[kind] and settings[k])})
    db.session.commit()
    return config


def build(kind: str, override_target: str | None = None):
    """The channel object for sending, or ChannelUnavailable saying what is missing."""
    config = get(kind)
    if not config.enabled:
        raise ChannelUnavailable(f"The {kind} channel is disabled by an admin.")
    settings, secrets = config.settings or {}, config.secrets or {}
    if kind == "in_app":
        return InAppChannel()
    if kind == "email":
        return EmailChannel(secrets.get("smtpUrl") or current_app.config.get("SMTP_URL", ""),
                            settings.get("sender", ""))
    return WebhookChannel(override_target or settings.get("url", ""), secrets.get("secret", ""),
                          float(settings.get("timeoutSeconds") or 10))
