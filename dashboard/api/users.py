from __future__ import annotations

from flask import jsonify, request

from dashboard import queries
from dashboard.access import ALL_ROLES, WRITERS, current_actor, roles
from dashboard.api import query
from dashboard.api.common import bp, idempotent, json_body
from dashboard.errors import NotFound, ValidationError
from dashboard.extensions import db
from dashboard.inputs import MAX_BIG_ID
from dashboard.models import User
from dashboard.recipients_csv.validation import user_id_problem
from dashboard.services import attributes, notifications, users


def _iso(v):
    return v.isoformat() if v else None


def user_json(u: User) -> dict:
    return {"userId": u.user_id, "name": u.name, "email": u.email, "timezone": u.timezone,
            "attributes": u.attributes or {}, "createdAt": _iso(u.created_at), "updatedAt": _iso(u.updated_at)}


def feed_item(n) -> dict:
    return {"id": n.id, "campaignId": n.campaign_id, "title": n.title, "body": n.body, "imageUrl": n.image_url,
            "actionUrl": n.action_url, "createdAt": _iso(n.created_at), "readAt": _iso(n.read_at),
            "clickedAt": _iso(n.clicked_at)}


def _user_id(user_id: str) -> str:
    """A userId from the path: SPEC §1's shape, or a 400 naming it."""
    if problem := user_id_problem(user_id):
        raise ValidationError(f"userId: {problem}", [{"field": "userId", "message": problem}])
    return user_id


def _entries(entries):
    """The shape of the call is checked whole (a malformed call is a 400); each well-formed
    entry's content is then saved or reported by position (partial success by design)."""
    if not isinstance(entries, list):
        return entries  # the service says what it needs
    for index, entry in enumerate(entries):
        field = f"users[{index}]"
        if not isinstance(entry, dict):
            raise ValidationError(f"{field} must be an object with a userId.",
                                  [{"field": field, "message": "not an object"}])
        for name in ("userId", "name", "email", "timezone"):
            value = entry.get(name)
            if not isinstance(value, str) and (name == "userId" or value is not None):
                message = "is required text" if name == "userId" else "must be text or null"
                raise ValidationError(f"{field}.{name} {message}.",
                                      [{"field": f"{field}.{name}", "message": message}])
        if not isinstance(entry.get("attributes"), (dict, type(None))):
            message = "must be an object of name: value"
            raise ValidationError(f"{field}.attributes {message}.",
                                  [{"field": f"{field}.attributes", "message": message}])
    return entries


@bp.post("/users")
@roles(*WRITERS)
def users_upsert():
    body = request.get_json(silent=True)
    entries = body.get("users") if isinstance(body, dict) else body
    return jsonify(users.upsert(_entries(entries)))


@bp.get("/attributes")
@roles(*ALL_ROLES)
def attributes_index():
    return jsonify(attributes.usage())


@bp.get("/users/<user_id>")
@roles(*ALL_ROLES)
def user_read(user_id: str):
    user = db.session.get(User, _user_id(user_id))
    if user is None:
        raise NotFound(f"No user {user_id} in the directory.")
    return jsonify(user_json(user))


@bp.post("/notifications")
@roles(*WRITERS)
@idempotent
def notification_send():
    campaign = notifications.send(json_body(), current_actor())
    return jsonify({"id": campaign.id, "total": campaign.total, "status": campaign.status}), 202


@bp.get("/users/<user_id>/notifications")
@roles(*ALL_ROLES)
def feed(user_id: str):
    limit = query.limit(default=20)
    unread_only = query.flag("unreadOnly")
    items, next_id, unread = notifications.feed(_user_id(user_id), unread_only=unread_only, limit=limit,
                                                cursor_id=queries.decode_cursor(request.args.get("cursor")))
    return jsonify({"items": [feed_item(n) for n in items], "unreadCount": unread,
                    "nextCursor": queries.encode_cursor(next_id) if next_id else None})


@bp.post(f"/users/<user_id>/notifications/<int(max={MAX_BIG_ID}):notification_id>/<any(read, clicked):what>")
@roles(*WRITERS)
def feed_mark(user_id: str, notification_id: int, what: str):
    note = notifications.mark(_user_id(user_id), notification_id, "read" if what == "read" else "clicked")
    return jsonify(feed_item(note))
