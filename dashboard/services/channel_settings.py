"""Channel settings (admin): enabled, rate limit, settings; secrets are write-only and
encrypted at rest, and the webhook's signing secret is generated here (shown once)."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from dashboard import encryption
from dashboard.channels import addresses
from dashboard.channels.base import ChannelUnavailable
from dashboard.channels.email import EmailChannel, parse_smtp_url
from dashboard.channels.in_app import InAppChannel
from dashboard.channels.webhook import WebhookChannel, generate_secret, secret_key
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
LABEL = {"smtpUrl": "SMTP URL", "secret": "signing secret"}


@dataclass
class Saved:
    config: ChannelConfig
    new_secret: str | None = None  # a signing secret Herald generated: the only time it is shown


def get(kind: str) -> ChannelConfig:
    if kind not in TYPES:
        raise NotFound(f'No channel "{kind}"; use in_app, email or webhook.')
    config = db.session.get(ChannelConfig, kind)
    if config is None:
        config = ChannelConfig(type=kind, enabled=True, rate_limit=DEFAULT_RATE[kind], settings={}, secrets={})
    return config


def public(config: ChannelConfig, new_secret: str | None = None) -> dict:
    secrets = dict(config.secrets or {})
    if config.type == "email" and not secrets.get("smtpUrl") and current_app.config.get("SMTP_URL"):
        secrets["smtpUrl"] = "(from SMTP_URL)"
    data = {"type": config.type, "enabled": config.enabled, "rateLimit": config.rate_limit,
            "settings": dict(config.settings or {}), "secretsSet": sorted(k for k, v in secrets.items() if v),
            "missing": missing(config)}
    data["configured"] = not data["missing"]
    if new_secret:
        data["signingSecret"] = new_secret
    return data


def missing(config: ChannelConfig) -> list[str]:
    """What a channel still needs before it can send (empty: configured)."""
    settings, secrets = config.settings or {}, config.secrets or {}
    if config.type == "email":
        need = [] if secrets.get("smtpUrl") or current_app.config.get("SMTP_URL") else ["SMTP URL"]
        return need + ([] if settings.get("sender") else ["sender address"])
    if config.type == "webhook":
        return ([] if settings.get("url") else ["URL"]) + ([] if secrets.get("secret") else ["signing secret"])
    return []


def plaintext_secrets(config: ChannelConfig) -> list[str]:
    """Secrets still stored unencrypted by an earlier version (the next save encrypts them)."""
    return sorted(k for k, v in (config.secrets or {}).items() if v and not encryption.is_encrypted(v))


def allow_private() -> bool:
    """HERALD_WEBHOOK_ALLOW_PRIVATE: webhooks may reach loopback/private addresses (development)."""
    return bool(current_app.config.get("HERALD_WEBHOOK_ALLOW_PRIVATE"))


def target_problem(url: str) -> str | None:
    """Why a webhook URL (stored or typed in for a test) may not be used, else None."""
    return addresses.url_problem(url, allow_private())


def _errors(kind: str, config: ChannelConfig, data: dict) -> list[dict]:
    errors = []
    if "enabled" in data and not isinstance(data["enabled"], bool):
        errors.append({"field": "enabled", "message": "must be true or false"})
    rate = data.get("rateLimit", config.rate_limit)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 100_000:
        errors.append({"field": "rateLimit", "message": "must be a number of messages per second, 0 < n ≤ 100000"})
    settings = {} if data.get("settings") is None else data["settings"]
    if not isinstance(settings, dict):
        return [*errors, {"field": "settings", "message": "must be an object"}]
    for key in sorted(set(settings) - set(PLAIN[kind]) - set(SECRET[kind])):
        errors.append({"field": f"settings.{key}", "message": f"not a setting of the {kind} channel"})
    for key in ("url", "sender", "smtpUrl", "secret"):
        if settings.get(key) not in (None, "") and not isinstance(settings[key], str):
            errors.append({"field": f"settings.{key}", "message": "must be a string"})
    if isinstance(settings.get("url"), str) and settings["url"] and (problem := target_problem(settings["url"])):
        errors.append({"field": "settings.url", "message": problem})
    if isinstance(settings.get("smtpUrl"), str) and settings["smtpUrl"]:
        try:
            parse_smtp_url(settings["smtpUrl"])
        except ChannelUnavailable as err:
            errors.append({"field": "settings.smtpUrl", "message": str(err)})
        except ValueError:  # urlsplit: e.g. "smtp://[::1" or a port past 65535
            errors.append({"field": "settings.smtpUrl", "message": "is not a valid URL (host or port)"})
    if kind == "webhook" and isinstance(settings.get("secret"), str) and settings["secret"]:
        try:
            secret_key(settings["secret"])
        except ValueError as err:
            errors.append({"field": "settings.secret", "message": str(err)})
    timeout = settings.get("timeoutSeconds")
    if timeout not in (None, "") and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                      or not 0 < timeout <= 60):
        errors.append({"field": "settings.timeoutSeconds", "message": "must be between 0 and 60"})
    return errors


def _stored(secrets: dict) -> dict:
    """Every secret encrypted under the current key (legacy plaintext included); a value that
    cannot be decrypted any more is kept as it is, for the admin to replace."""
    out = {}
    for key, value in secrets.items():
        try:
            out[key] = encryption.encrypt(encryption.decrypt(value)) if value else value
        except encryption.Undecryptable:
            out[key] = value
    return out


def update(kind: str, data: dict, actor: Actor) -> Saved:
    """Save a channel's settings. Saving the webhook channel without a signing secret generates one."""
    config = get(kind)
    errors = _errors(kind, config, data)
    if errors:
        raise ValidationError(f"{errors[0]['field']}: {errors[0]['message']}", errors)
    settings = {} if data.get("settings") is None else data["settings"]
    config.enabled = data.get("enabled", config.enabled)
    config.rate_limit = float(data.get("rateLimit", config.rate_limit))
    plain = dict(config.settings or {})
    secrets = dict(config.secrets or {})
    for key in PLAIN[kind]:
        if key in settings:
            plain[key] = settings[key]
    changed = sorted(k for k in SECRET[kind] if settings.get(k))  # empty keeps the stored secret
    for key in changed:
        secrets[key] = settings[key]
    new_secret = None
    if kind == "webhook" and not secrets.get("secret"):
        new_secret = secrets["secret"] = generate_secret()
        changed.append("secret")
    config.settings, config.secrets, config.updated_at = plain, _stored(secrets), utcnow()
    db.session.add(config)
    audit.record(actor, "channel.updated", "channel", kind,
                 details={"enabled": config.enabled, "rateLimit": config.rate_limit,
                          "settings": sorted(k for k in settings if k in PLAIN[kind]), "secretsChanged": changed})
    db.session.commit()
    return Saved(config, new_secret)


def rotate_secret(kind: str, actor: Actor) -> Saved:
    """A new webhook signing secret, effective at once (the previous one stops verifying)."""
    config = get(kind)
    if kind != "webhook":
        raise ValidationError("Only the webhook channel has a signing secret to rotate.")
    new_secret = generate_secret()
    config.secrets = _stored({**(config.secrets or {}), "secret": new_secret})
    config.updated_at = utcnow()
    db.session.add(config)
    audit.record(actor, "channel.secret_rotated", "channel", kind, details={"secretsChanged": ["secret"]})
    db.session.commit()
    return Saved(config, new_secret)


def _secrets(config: ChannelConfig) -> dict[str, str]:
    """The decrypted secrets, or ChannelUnavailable when one can no longer be read."""
    out = {}
    for key, value in (config.secrets or {}).items():
        try:
            out[key] = encryption.decrypt(value) if value else ""
        except encryption.Undecryptable as err:
            raise ChannelUnavailable(f"The {config.type} channel's {LABEL.get(key, key)} cannot be read: {err}. "
                                     "Enter it again (or rotate it) in Admin → Channels.") from None
    return out


def build(kind: str, override_target: str | None = None):
    """The channel object for sending, or ChannelUnavailable saying what is missing."""
    config = get(kind)
    if not config.enabled:
        raise ChannelUnavailable(f"The {kind} channel is disabled by an admin.")
    settings = config.settings or {}
    if kind == "in_app":
        return InAppChannel()
    secrets = _secrets(config)
    if kind == "email":
        return EmailChannel(secrets.get("smtpUrl") or current_app.config.get("SMTP_URL", ""),
                            settings.get("sender", ""))
    return WebhookChannel(override_target or settings.get("url", ""), secrets.get("secret", ""),
                          float(settings.get("timeoutSeconds") or 10), allow_private=allow_private())
