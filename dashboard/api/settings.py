"""Workspace settings over the API (admin only): four-eyes approval of templates and large sends."""

from __future__ import annotations

from flask import jsonify

from dashboard.access import ADMINS, current_actor, roles
from dashboard.api.common import bp, json_body, whole_numbers
from dashboard.services import workspace


def four_eyes_json(setting: workspace.FourEyes) -> dict:
    return {"enabled": setting.enabled, "threshold": setting.threshold}


@bp.get("/settings/four-eyes")
@roles(*ADMINS)
def four_eyes_read():
    return jsonify(four_eyes_json(workspace.four_eyes()))


@bp.put("/settings/four-eyes")
@roles(*ADMINS)
def four_eyes_update():
    body = whole_numbers(json_body(), "threshold")
    return jsonify(four_eyes_json(workspace.set_four_eyes(body.get("enabled"), body.get("threshold"),
                                                          current_actor())))
