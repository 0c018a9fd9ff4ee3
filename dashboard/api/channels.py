from __future__ import annotations

from flask import jsonify

from dashboard.access import ADMINS, ALL_ROLES, current_actor, roles
from dashboard.api.common import bp, json_body
from dashboard.services import channel_settings


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
    return jsonify(channel_settings.public(channel_settings.update(kind, json_body(), current_actor())))
