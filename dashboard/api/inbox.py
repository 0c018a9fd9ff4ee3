"""The end-user inbox API (/inbox/v1): what `<herald-inbox>` calls from the customer's pages.

Auth is a user token (`Authorization: Bearer`), never a cookie or an API key: a token reads and
marks its own user's feed only (no userId in any path). Cross-origin calls are answered only for
the origins an admin allows; anything else with an Origin header is refused before the view runs.
The token itself comes from `POST /api/v1/users/{userId}/inbox-token` (an API key, server to server)."""

from __future__ import annotations

import os

from flask import Blueprint, Response, current_app, g, jsonify, request, send_from_directory

from dashboard import queries
from dashboard.access import ADMINS, WRITERS, current_actor, public, roles
from dashboard.api import query
from dashboard.api.common import bp as api_bp
from dashboard.api.common import json_body, whole_numbers
from dashboard.api.users import _user_id, feed_item
from dashboard.errors import Forbidden, ValidationError
from dashboard.inputs import MAX_BIG_ID
from dashboard.services import inbox, inbox_stream

bp = Blueprint("inbox", __name__, url_prefix="/inbox/v1")
ALLOWED_HEADERS = "Authorization, Content-Type, Last-Event-ID"
WIDGET_DIR = os.path.join("inbox", "v1")


def anonymous(view):
    """No token needed (the widget's own script)."""
    view.inbox_anonymous = True
    return view


def _own_origin() -> str:
    return request.host_url.rstrip("/")


def _origin_allowed(origin: str) -> bool:
    return origin == _own_origin() or origin in inbox.allowed_origins()


@bp.before_request
def gate():
    """CORS first (a refused origin learns nothing else), then the token."""
    view = current_app.view_functions.get(request.endpoint)
    origin = request.headers.get("Origin")
    if origin and not getattr(view, "inbox_anonymous", False) and not _origin_allowed(origin):
        error = Forbidden(f"Origin {origin[:200]} is not allowed to call this inbox; an admin adds it under "
                          "Settings → In-app inbox.")
        error.code = "origin_not_allowed"
        raise error
    if request.method == "OPTIONS":
        return Response(status=204)
    if getattr(view, "inbox_anonymous", False):
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        error = inbox.TokenError("Send the user's inbox token as `Authorization: Bearer <token>`.")
        error.code = "token_missing"
        raise error
    g.inbox_token = token.strip()
    g.inbox_user, _ = inbox.read_token(g.inbox_token)
    return None


@bp.after_request
def cors(response):
    origin = request.headers.get("Origin")
    if getattr(current_app.view_functions.get(request.endpoint), "inbox_anonymous", False):
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
        return response
    response.headers.add("Vary", "Origin")  # the answer depends on it, allowed or not (shared caches)
    if origin and _origin_allowed(origin):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Max-Age"] = "600"
    return response


def _item(note) -> dict:
    data = feed_item(note)
    data["archivedAt"] = note.archived_at.isoformat() if note.archived_at else None
    return data


@bp.get("/herald-inbox.js")
@public
@anonymous
def widget():
    response = send_from_directory(os.path.join(current_app.static_folder, WIDGET_DIR), "herald-inbox.js",
                                   mimetype="text/javascript", max_age=300)
    return response


@bp.get("/notifications")
@public  # the gate above checks the user token (access.py's roles are for accounts)
def notifications_index():
    items, next_id, unread = inbox.feed(g.inbox_user, limit=query.limit(default=20),
                                        cursor_id=queries.decode_cursor(request.args.get("cursor")),
                                        unread_only=query.flag("unreadOnly"), archived=query.flag("archived"))
    return jsonify({"items": [_item(n) for n in items], "unreadCount": unread,
                    "nextCursor": queries.encode_cursor(next_id) if next_id else None})


@bp.get("/unread-count")
@public
def unread_count():
    return jsonify({"unreadCount": inbox.unread_count(g.inbox_user)})


@bp.post(f"/notifications/<int(max={MAX_BIG_ID}):notification_id>/<any(read, click, archive):what>")
@public
def notification_mark(notification_id: int, what: str):
    note = inbox.mark(g.inbox_user, notification_id, {"read": "read", "click": "clicked", "archive": "archived"}[what])
    body = {"notification": _item(note), "unreadCount": inbox.unread_count(g.inbox_user)}
    if what == "click":
        body["actionUrl"] = note.action_url
    return jsonify(body)


@bp.post("/notifications/read-all")
@public
def notifications_read_all():
    updated = inbox.mark_all_read(g.inbox_user)
    return jsonify({"updated": updated, "unreadCount": inbox.unread_count(g.inbox_user)})


@bp.get("/stream")
@public
def stream():
    last = None
    # the query serves a first connection; the header (an EventSource reconnecting) wins. Each is checked.
    for name, raw in (("lastEventId", request.args.get("lastEventId")),
                      ("Last-Event-ID", (request.headers.get("Last-Event-ID") or "").strip(" \t"))):
        if not raw:
            continue
        if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_BIG_ID:
            raise ValidationError(f"{name} must be the id of the newest notification the client holds "
                                  "(a whole number; 0 for none).", [{"field": name, "message": "not an id"}])
        last = int(raw)
    body = inbox_stream.events(current_app._get_current_object(), g.inbox_user, g.inbox_token, last, _item)
    return Response(body, mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"})


# -- server to server (API key) -------------------------------------------------------------------

@api_bp.post("/users/<user_id>/inbox-token")
@roles(*WRITERS)
def inbox_token(user_id: str):
    body = whole_numbers(json_body(optional=True), "expiresIn")
    token, expires = inbox.issue_token(_user_id(user_id), body.get("expiresIn"))
    return jsonify({"token": token, "userId": user_id, "expiresAt": expires.isoformat()}), 201


@api_bp.get("/settings/inbox")
@roles(*ADMINS)
def inbox_settings_read():
    return jsonify(inbox.public_settings())


@api_bp.put("/settings/inbox")
@roles(*ADMINS)
def inbox_settings_update():
    body = json_body()
    if body.get("allowedOrigins") is None:
        raise ValidationError("Send allowedOrigins: a list of origins like https://app.example.com.",
                              [{"field": "allowedOrigins", "message": "is required"}])
    inbox.set_settings(allowed_origins=body["allowedOrigins"], actor=current_actor())
    return jsonify(inbox.public_settings())


@api_bp.post("/settings/inbox/rotate")
@roles(*ADMINS)
def inbox_settings_rotate():
    """Revoke every user token at once (a new inbox secret)."""
    inbox.set_settings(rotate=True, actor=current_actor())
    return jsonify(inbox.public_settings())

