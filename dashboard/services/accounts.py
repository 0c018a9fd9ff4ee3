"""Accounts, passwords, sign-in and API keys."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from sqlalchemy import func, select, update
from werkzeug.security import check_password_hash, generate_password_hash

from dashboard.errors import NotFound, Unauthorized, ValidationError
from dashboard.extensions import db
from dashboard.models import Account, ApiKey, Role, utcnow
from dashboard.services import audit, sessions
from dashboard.services.actor import Actor
from dashboard.services.login_throttle import LoginThrottle

EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 8
KEY_PREFIX = "hrld"
# Spent on unknown emails so a login takes the same time whether the account exists.
_DUMMY_HASH = generate_password_hash("timing-equaliser")


def normalise_email(email: str) -> str:
    return (email or "").strip().lower()


def validate_email(email: str) -> str:
    email = normalise_email(email)
    if not EMAIL_RE.match(email) or len(email) > 254:
        raise ValidationError("Enter a valid email address.",
                              [{"field": "email", "message": "Enter a valid email address."}])
    return email


def validate_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise ValidationError(f"Role must be one of {allowed}.",
                              [{"field": "role", "message": f"Role must be one of {allowed}."}]) from None


def validate_password(password: str) -> str:
    if len(password or "") < MIN_PASSWORD:
        msg = f"Password must be at least {MIN_PASSWORD} characters."
        raise ValidationError(msg, [{"field": "password", "message": msg}])
    return password


def find_by_email(email: str) -> Account | None:
    return db.session.scalar(select(Account).where(Account.email == normalise_email(email)))


def create_account(email: str, role: str, password: str, actor: Actor) -> Account:
    email = validate_email(email)
    role = validate_role(role)
    validate_password(password)
    if find_by_email(email):
        msg = "An account with this email already exists."
        raise ValidationError(msg, [{"field": "email", "message": msg}])
    account = Account(email=email, role=role.value, password_hash=generate_password_hash(password))
    db.session.add(account)
    db.session.flush()
    audit.record(actor, "account.created", "account", account.id, details={"email": email, "role": role.value})
    db.session.commit()
    return account


def set_password(account: Account, password: str) -> None:
    """A new password signs the account out everywhere (the caller commits)."""
    validate_password(password)
    account.password_hash = generate_password_hash(password)
    if account.id is not None:
        sessions.end_all(account.id)


def _admin_count() -> int:
    return db.session.scalar(
        select(func.count()).select_from(Account).where(Account.role == Role.ADMIN, Account.active)
    )


def get_account(account_id: int) -> Account:
    account = db.session.get(Account, account_id)
    if account is None:
        raise NotFound("No such account.")
    return account


def change_role(account_id: int, role: str, actor: Actor) -> Account:
    account = get_account(account_id)
    new_role = validate_role(role)
    if account.role == new_role:
        return account
    if account.role == Role.ADMIN and account.active and _admin_count() <= 1:
        raise ValidationError("This is the last active admin; make another admin first.")
    old = account.role
    account.role = new_role.value
    audit.record(actor, "account.role_changed", "account", account.id, from_status=old, to_status=new_role.value,
                 details={"email": account.email})
    db.session.commit()
    return account


def set_active(account_id: int, active: bool, actor: Actor) -> Account:
    account = get_account(account_id)
    if account.active == active:
        return account
    if not active and account.role == Role.ADMIN and _admin_count() <= 1:
        raise ValidationError("This is the last active admin; it cannot be deactivated.")
    if not active and actor.account_id == account.id:
        raise ValidationError("You cannot deactivate your own account.")
    account.active = active
    if not active:
        sessions.end_all(account.id)
    audit.record(actor, "account.activated" if active else "account.deactivated", "account", account.id,
                 details={"email": account.email})
    db.session.commit()
    return account


# -- login ------------------------------------------------------------------

def authenticate(email: str, password: str, address: str | None, device: str | None = None) -> Account:
    """Return the account for good credentials; raise Unauthorized (one message for
    unknown email and wrong password) or LoginThrottled after too many failures.
    `device` is the browser's device cookie, if any (see login_throttle)."""
    email = normalise_email(email)
    throttle = LoginThrottle(address or "unknown", email, device)
    throttle.check()
    account = find_by_email(email)
    if account is None:
        check_password_hash(_DUMMY_HASH, password or "")
        ok = False
    else:
        ok = check_password_hash(account.password_hash, password or "") and account.active
    if not ok:
        throttle.failed()
        raise Unauthorized("Email or password is incorrect.")
    throttle.succeeded()
    account.last_login_at = utcnow()
    db.session.commit()
    return account


# -- API keys ---------------------------------------------------------------

def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(account: Account, name: str, actor: Actor) -> tuple[ApiKey, str]:
    """Return the stored key and the plain secret, which is shown once and never stored."""
    if not account.active:
        raise ValidationError("This account is deactivated.")
    prefix = secrets.token_hex(4)
    plain = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(account=account, name=(name or "").strip()[:100], prefix=prefix, key_hash=_digest(plain))
    db.session.add(key)
    db.session.flush()
    audit.record(actor, "api_key.created", "api_key", key.id,
                 details={"prefix": prefix, "owner": account.email, "name": key.name})
    db.session.commit()
    return key, plain


def revoke_api_key(key_id: int, actor: Actor) -> ApiKey:
    key = db.session.get(ApiKey, key_id)
    if key is None:
        raise NotFound("No such API key.")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        audit.record(actor, "api_key.revoked", "api_key", key.id,
                     details={"prefix": key.prefix, "owner": key.account.email})
        db.session.commit()
    return key


def authenticate_api_key(header: str) -> ApiKey:
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send your API key as 'Authorization: Bearer <key>'.")
    token = token.strip()
    parts = token.split("_", 2)
    key = None
    if len(parts) == 3 and parts[0] == KEY_PREFIX:
        key = db.session.scalar(select(ApiKey).where(ApiKey.prefix == parts[1]))
    expected = key.key_hash if key is not None else _digest("no-such-key")
    if not hmac.compare_digest(_digest(token), expected) or key is None:
        raise Unauthorized("The API key is invalid.")
    if key.revoked_at is not None:
        raise Unauthorized("The API key has been revoked.")
    if not key.account.active:
        raise Unauthorized("The API key's account is deactivated.")
    now = utcnow()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        key.last_used_at = now
        db.session.commit()
    return key


def set_timezone(account_id: int, zone: str, *, only_if_unset: bool = False) -> bool:
    """Remember the zone an account sees times in; with only_if_unset, a chosen zone wins
    over the browser's guess. True if the row changed."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"Unknown time zone “{zone[:64]}”.", [{"field": "timezone", "message": "unknown"}]) \
            from None
    stmt = update(Account).where(Account.id == account_id).values(timezone=zone)
    if only_if_unset:
        stmt = stmt.where(Account.timezone.is_(None))
    changed = db.session.execute(stmt.execution_options(synchronize_session=False)).rowcount == 1
    db.session.commit()
    return changed
