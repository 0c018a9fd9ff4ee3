"""The end-user inbox: signed user tokens, the allowed origins, the feed as one user sees it, and
the live events (one Redis PUBLISH per delivered chunk, fanned out by each web process).

A token is `{"u": userId, "e": expiry}` signed with SECRET_KEY under a salt made of the workspace's
inbox secret: rotating that secret (admin) revokes every token at once; changing SECRET_KEY does too."""

from __future__ import annotations

import json
import logging
import secrets
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from dashboard.errors import NotFound, Unauthorized, ValidationError
from dashboard.extensions import db, get_redis
from dashboard.models import Campaign, Notification, WorkspaceSetting, utcnow
from dashboard.recipients_csv.validation import user_id_problem
from dashboard.services import audit, notifications
from dashboard.services.actor import Actor

log = logging.getLogger(__name__)

SETTING = "inbox"
CHANNEL = "herald:inbox"
MAX_TTL = 7 * 24 * 3600
MAX_ORIGINS = 50
_CACHE_SECONDS = 5.0
_cache: dict = {}  # per process: {"at": monotonic, "value": dict}; settings change rarely, every request reads them


class TokenError(Unauthorized):
    code = "invalid_token"


class TokenExpired(Unauthorized):
    code = "token_expired"


class OriginRefused(Exception):
    pass


# -- settings -------------------------------------------------------------------------------------

def _stored() -> dict:
    row = db.session.get(WorkspaceSetting, SETTING)
    value = dict(row.value) if row is not None and isinstance(row.value, dict) else {}
    if not value.get("secret"):  # made on first use, kept in the database (all web processes agree)
        value["secret"] = secrets.token_hex(32)
        value.setdefault("allowedOrigins", [])
        if row is None:
            row = WorkspaceSetting(key=SETTING, updated_by="system")
            db.session.add(row)
        row.value, row.updated_at = value, utcnow()
        try:
            db.session.commit()
        except IntegrityError:  # another process made it at the same moment: theirs stands
            db.session.rollback()
            return dict(db.session.get(WorkspaceSetting, SETTING).value)
    return value


def forget_settings() -> None:
    """Drop this process's cached settings (after a change, and between tests)."""
    _cache.clear()


def settings(fresh: bool = False) -> dict:
    """`{"allowedOrigins": [...], "secret": str, "rotatedAt": iso|None}`, cached a few seconds per process."""
    cached = _cache.get("value")
    if not fresh and cached is not None and time.monotonic() - _cache["at"] < _CACHE_SECONDS:
        return cached
    value = _stored()
    _cache.update(value=value, at=time.monotonic())
    return value


def allowed_origins() -> list[str]:
    return list(settings().get("allowedOrigins") or [])


def clean_origin(raw) -> str:
    """`scheme://host[:port]` exactly as a browser sends it in Origin, or a ValueError saying why."""
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError("must be text like https://app.example.com")
    text = raw.strip().rstrip("/")
    if len(text) > 200:
        raise ValueError("is longer than 200 characters")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"“{text}” is not an origin like https://app.example.com")
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"“{text}” has more than scheme://host[:port] (an origin has no path)")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"“{text}” has an invalid port") from None
    host = parts.hostname.lower()
    if ":" in host:  # IPv6: browsers send it bracketed
        host = f"[{host}]"
    elif not host.isascii():  # browsers send an internationalised name in its ASCII (punycode) form
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"“{text}” has a host name that is not valid") from None
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def set_settings(*, allowed_origins=None, rotate: bool = False, actor: Actor) -> dict:
    """Replace the allowed origins (a list of origins) and/or rotate the secret (revokes every token)."""
    value = dict(_stored())
    before = {"allowedOrigins": list(value.get("allowedOrigins") or [])}
    if allowed_origins is not None:
        if not isinstance(allowed_origins, list):
            raise ValidationError("allowedOrigins must be a list of origins.",
                                  [{"field": "allowedOrigins", "message": "must be a list"}])
        if len(allowed_origins) > MAX_ORIGINS:
            raise ValidationError(f"At most {MAX_ORIGINS} allowed origins.",
                                  [{"field": "allowedOrigins", "message": f"more than {MAX_ORIGINS}"}])
        clean, problems = [], []
        for index, raw in enumerate(allowed_origins):
            try:
                origin = clean_origin(raw)
            except ValueError as err:
                problems.append({"field": f"allowedOrigins[{index}]", "message": str(err)})
                continue
            if origin not in clean:
                clean.append(origin)
        if problems:
            raise ValidationError(f"allowedOrigins[{problems[0]['field'].split('[')[1]} {problems[0]['message']}; "
                                  "nothing was changed.", problems)
        value["allowedOrigins"] = clean
    if rotate:
        value["secret"] = secrets.token_hex(32)
        value["rotatedAt"] = utcnow().isoformat()
    row = db.session.get(WorkspaceSetting, SETTING)
    row.value, row.updated_at, row.updated_by = value, utcnow(), actor.label
    after = {"allowedOrigins": value.get("allowedOrigins", [])}
    if rotate:
        after["secretRotated"] = True
    audit.record(actor, "workspace.inbox_updated", "workspace", SETTING, details={"before": before, "after": after})
    db.session.commit()
    forget_settings()
    return value


def public_settings() -> dict:
    value = settings(fresh=True)
    return {"allowedOrigins": list(value.get("allowedOrigins") or []), "rotatedAt": value.get("rotatedAt"),
            "tokenTtlSeconds": current_app.config["HERALD_INBOX_TOKEN_TTL"]}


# -- tokens ---------------------------------------------------------------------------------------

def _serializer(secret: str) -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=f"herald-inbox:{secret}")


def issue_token(user_id: str, expires_in: int | None = None) -> tuple[str, datetime]:
    if problem := user_id_problem(user_id):
        raise ValidationError(f"userId: {problem}", [{"field": "userId", "message": problem}])
    ttl = current_app.config["HERALD_INBOX_TOKEN_TTL"] if expires_in is None else expires_in
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= MAX_TTL:
        raise ValidationError(f"expiresIn must be a whole number of seconds from 1 to {MAX_TTL}.",
                              [{"field": "expiresIn", "message": f"must be 1..{MAX_TTL}"}])
    expires = int(time.time()) + ttl
    token = _serializer(settings()["secret"]).dumps({"u": user_id, "e": expires})
    return token, datetime.fromtimestamp(expires, UTC)


def read_token(token: str) -> tuple[str, int]:
    """(userId, expiry epoch) of a good token; TokenError / TokenExpired otherwise."""
    if not token or len(token) > 2000:
        raise TokenError("The inbox token is not valid.")
    for fresh in (False, True):  # a rotation another process made shows here within the cache time
        try:
            data = _serializer(settings(fresh=fresh)["secret"]).loads(token)
            break
        except BadSignature:
            continue
    else:
        raise TokenError("The inbox token is not valid (tampered, for another Herald, or revoked).")
    if not isinstance(data, dict) or not isinstance(data.get("u"), str) or not isinstance(data.get("e"), int):
        raise TokenError("The inbox token is not valid.")
    if data["e"] <= time.time():
        raise TokenExpired("The inbox token has expired; ask your server for a new one.")
    return data["u"], data["e"]


def token_still_good(token: str) -> bool:
    """For a long-lived stream: not expired and its secret not rotated (no database read within the cache time)."""
    try:
        read_token(token)
        return True
    except Unauthorized:
        return False


# -- the feed -------------------------------------------------------------------------------------

def unread_count(user_id: str) -> int:
    return db.session.scalar(select(func.count()).select_from(Notification).where(
        Notification.user_id == user_id, Notification.read_at.is_(None), Notification.archived_at.is_(None)))


def unread_counts(user_ids: list[str]) -> dict[str, int]:
    """Unread counts of several users in one grouped query (users with none are absent)."""
    rows = db.session.execute(select(Notification.user_id, func.count()).where(
        Notification.user_id.in_(user_ids), Notification.read_at.is_(None), Notification.archived_at.is_(None))
        .group_by(Notification.user_id)).all()
    return dict(rows)


def feed(user_id: str, *, limit: int, cursor_id: int | None, unread_only: bool, archived: bool):
    stmt = select(Notification).where(Notification.user_id == user_id,
                                      Notification.archived_at.is_not(None) if archived
                                      else Notification.archived_at.is_(None))
    if unread_only:
        stmt = stmt.where(Notification.read_at.is_(None))
    rows, next_id = notifications.page_of(stmt, limit, cursor_id)
    return rows, next_id, unread_count(user_id)


def newer_than(user_id: str, last_id: int, limit: int) -> list[Notification]:
    """The user's items after `last_id`, oldest first (what a stream sends, and replays on resume)."""
    return db.session.scalars(select(Notification).where(
        Notification.user_id == user_id, Notification.id > last_id, Notification.archived_at.is_(None))
        .order_by(Notification.id).limit(limit)).all()


def newest_id(user_id: str) -> int:
    return db.session.scalar(select(func.max(Notification.id)).where(Notification.user_id == user_id)) or 0


def mark(user_id: str, notification_id: int, what: str) -> Notification:
    """read | clicked (idempotent, counted once on the campaign) | archived."""
    if what == "archived":
        note = db.session.get(Notification, notification_id)
        if note is None or note.user_id != user_id:
            raise NotFound(f"No notification {notification_id} in this inbox.")
        db.session.execute(update(Notification).where(Notification.id == note.id, Notification.archived_at.is_(None))
                           .values(archived_at=utcnow()).execution_options(synchronize_session=False))
        db.session.commit()
        db.session.refresh(note)
    else:
        try:
            note = notifications.mark(user_id, notification_id, what)
        except NotFound:
            raise NotFound(f"No notification {notification_id} in this inbox.") from None
    publish_state(user_id)
    return note


def mark_all_read(user_id: str) -> int:
    """One UPDATE of the user's unread items, then one counter UPDATE per campaign they came from."""
    now = utcnow()
    changed = db.session.execute(
        update(Notification).where(Notification.user_id == user_id, Notification.read_at.is_(None),
                                   Notification.archived_at.is_(None))
        .values(read_at=now).returning(Notification.campaign_id).execution_options(synchronize_session=False)).all()
    per_campaign: dict[int, int] = {}
    for (campaign_id,) in changed:
        if campaign_id is not None:
            per_campaign[campaign_id] = per_campaign.get(campaign_id, 0) + 1
    for campaign_id, count in sorted(per_campaign.items()):  # a fixed order: no deadlock with another mark-all
        db.session.execute(update(Campaign).where(Campaign.id == campaign_id)
                           .values(read_count=Campaign.read_count + count).execution_options(synchronize_session=False))
    db.session.commit()
    if changed:
        publish_state(user_id)
    return len(changed)


# -- live events ----------------------------------------------------------------------------------

def _publish(message: dict) -> None:
    """Best effort: a stream that misses this catches up at its next wake or reconnect (it reads the rows)."""
    try:
        get_redis().publish(CHANNEL, json.dumps(message, separators=(",", ":")))
    except Exception as err:  # noqa: BLE001 - delivery has committed; never undo it for a notification
        log.warning("inbox event not published: %s", err)


def publish_delivered(user_ids) -> None:
    """Once per committed in-app chunk: the users who got a new item."""
    users = list(dict.fromkeys(user_ids))
    if users:
        _publish({"k": "new", "u": users, "at": time.time()})


def publish_state(user_id: str) -> None:
    _publish({"k": "state", "u": [user_id], "at": time.time()})
