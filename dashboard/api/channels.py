from __future__ import annotations

from flask import jsonify

from dashboard.access import ADMINS, ALL_ROLES, current_actor, roles
from dashboard.api.common import bp, json_body
from dashboard.services import channel_settings


def _saved(saved: channel_settings.Saved):
    """The channel; a signing secret Herald just generated is in this answer only (never stored in caches)."""
    response = jsonify(channel_settings.public(saved.config, saved.new_secret))
    if saved.new_secret:
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/channels")
@roles(*ALL_ROLES)
def channel_list():
    items = [channel_settings.public(channel_settings.get(kind)) for kind in channel_settings.TYPES]
    return jsonify({"items": items, "nextCursor": None})


@bp.get("/channels/<kind>")
@roles(*ADMINS)
def channel_read(kind: str):
    return jsonify(channel_settings.public(channel_settings.get(kind)))


@bp.put("/channels/<kind>")
@roles(*ADMINS)
def channel_update(kind: str):
    return _saved(channel_settings.update(kind, json_body(), current_actor()))


@bp.post("/channels/<kind>/secret")
@roles(*ADMINS)
def channel_rotate_secret(kind: str):
    return _saved(channel_settings.rotate_secret(kind, current_actor()))
