"""Dashboard sessions kept in the database: the signed cookie only names a row, so logout,
deactivation or a new password end every copy of the cookie, and idle sessions expire.

The database rather than Redis: pages that only read keep working while Redis is down, and
a Redis restart does not sign everybody out."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, select, update
from sqlalchemy.orm import joinedload

from dashboard.extensions import db
from dashboard.models import Account, AccountSession, utcnow

# last_seen_at is written at most this often per session (a fraction of the idle timeout, at most a minute).
_TOUCH_SHARE = 10
_TOUCH_MAX = timedelta(minutes=1)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _idle() -> timedelta:
    return timedelta(minutes=current_app.config["HERALD_SESSION_IDLE_MINUTES"])


def start(account: Account) -> str:
    """Record a new session and return its token, which only the signed cookie carries."""
    now = utcnow()
    db.session.execute(delete(AccountSession).where(AccountSession.last_seen_at < now - _idle()))
    token = secrets.token_urlsafe(32)
    db.session.add(AccountSession(token_hash=_digest(token), account_id=account.id, created_at=now,
                                  last_seen_at=now))
    db.session.commit()
    return token


def resume(token: str, account_id: int) -> Account | None:
    """The account of a live session, its idle clock restarted; None when the session was
    ended, has been idle too long, or belongs to another account."""
    row = db.session.scalar(select(AccountSession).options(joinedload(AccountSession.account))
                            .where(AccountSession.token_hash == _digest(token)))
    if row is None or row.account_id != account_id or not row.account.active:
        return None
    now, idle = utcnow(), _idle()
    if now - row.last_seen_at > idle:
        db.session.delete(row)
        db.session.commit()
        return None
    if now - row.last_seen_at > min(idle / _TOUCH_SHARE, _TOUCH_MAX):
        db.session.execute(update(AccountSession).where(AccountSession.token_hash == row.token_hash)
                           .values(last_seen_at=now))
        db.session.commit()
    return row.account


def end(token: str) -> None:
    db.session.execute(delete(AccountSession).where(AccountSession.token_hash == _digest(token)))
    db.session.commit()


def end_all(account_id: int) -> int:
    """Delete every session of an account (the caller commits); returns how many there were."""
    result = db.session.execute(delete(AccountSession).where(AccountSession.account_id == account_id))
    return result.rowcount
