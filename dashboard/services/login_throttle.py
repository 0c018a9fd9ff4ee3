"""Failed sign-ins counted in Redis, in fixed windows, by three rules at once:

- per client address and email (`LOGIN_MAX_FAILURES`): one client guessing one account;
- per email, from any address (`LOGIN_MAX_FAILURES_PER_EMAIL`, larger): many addresses
  guessing one account;
- per client address, across emails (`LOGIN_MAX_FAILURES_PER_ADDRESS`, larger): one client
  spraying passwords over many accounts.

A browser that signed in to an account before carries a signed device token for it and is
counted only by its own (device, email) rule, so an attacker who trips the per-email or
per-address rule cannot lock the owner out of the browser they already use."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from flask import current_app
from itsdangerous import BadData, URLSafeTimedSerializer

from dashboard.errors import RateLimited
from dashboard.extensions import get_redis

DEVICE_COOKIE = "herald_device"
DEVICE_MAX_AGE = 180 * 24 * 3600
_KEY = "herald:login-failures"
_MESSAGES = {
    "pair": "Too many failed sign-in attempts. Try again in {wait}.",
    "device": "Too many failed sign-in attempts. Try again in {wait}.",
    "email": "Too many failed sign-in attempts for this account. Try again in {wait}, "
             "or from a browser that has signed in to it before.",
    "address": "Too many failed sign-in attempts from your network. Try again in {wait}.",
}


class LoginThrottled(RateLimited):
    """A 429 that says when to try again (also sent as Retry-After)."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Rule:
    name: str
    subject: str
    limit: int

    @property
    def key(self) -> str:
        digest = hashlib.sha256(self.subject.encode()).hexdigest()[:32]
        return f"{_KEY}:{self.name}:{digest}"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt="herald.login-device")


def _email_tag(email: str) -> str:
    return hashlib.sha256(email.encode()).hexdigest()[:32]


def device_token(email: str) -> str:
    """A new token for the device cookie, set after a successful sign-in to `email`."""
    return _serializer().dumps({"e": _email_tag(email), "d": secrets.token_hex(12)})


def _device_id(token: str | None, email: str) -> str | None:
    if not token or len(token) > 512:
        return None
    try:
        data = _serializer().loads(token, max_age=DEVICE_MAX_AGE)
    except BadData:
        return None
    if not isinstance(data, dict) or data.get("e") != _email_tag(email) or not isinstance(data.get("d"), str):
        return None
    return data["d"]


def _minutes(seconds: int) -> str:
    minutes = max((seconds + 59) // 60, 1)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


class LoginThrottle:
    def __init__(self, address: str, email: str, device: str | None = None):
        config = current_app.config
        device_id = _device_id(device, email)
        if device_id is not None:
            self.rules = [Rule("device", f"{device_id}|{email}", config["LOGIN_MAX_FAILURES"])]
        else:
            self.rules = [Rule("pair", f"{address}|{email}", config["LOGIN_MAX_FAILURES"]),
                          Rule("email", email, config["LOGIN_MAX_FAILURES_PER_EMAIL"]),
                          Rule("address", address, config["LOGIN_MAX_FAILURES_PER_ADDRESS"])]

    def check(self) -> None:
        """Raise LoginThrottled if any rule is at its limit, saying when the last one lifts."""
        pipe = get_redis().pipeline(transaction=False)
        for rule in self.rules:
            pipe.get(rule.key)
            pipe.ttl(rule.key)
        answers = pipe.execute()
        blocked = [(rule, max(answers[2 * i + 1], 1)) for i, rule in enumerate(self.rules)
                   if int(answers[2 * i] or 0) >= rule.limit]
        if blocked:
            rule, wait = max(blocked, key=lambda pair: pair[1])
            raise LoginThrottled(_MESSAGES[rule.name].format(wait=_minutes(wait)), wait)

    def failed(self) -> None:
        window = current_app.config["LOGIN_WINDOW_SECONDS"]
        pipe = get_redis().pipeline()
        for rule in self.rules:
            pipe.incr(rule.key)
            pipe.expire(rule.key, window, nx=True)
        pipe.execute()

    def succeeded(self) -> None:
        """Clear only this client's own count: the per-email and per-address counts run out
        with their window, so signing in to one account does not reset a spraying budget."""
        get_redis().delete(self.rules[0].key)
