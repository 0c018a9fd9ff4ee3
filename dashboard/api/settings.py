"""Workspace settings over the API (admin only): four-eyes approval of templates and large sends,
quiet hours and frequency caps (SPEC §10 recipient time). Every change is audited by the
workspace service."""

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


@bp.get("/settings/quiet-hours")
@roles(*ADMINS)
def quiet_hours_read():
    return jsonify(workspace.quiet_hours().as_json())


@bp.put("/settings/quiet-hours")
@roles(*ADMINS)
def quiet_hours_update():
    """{enabled, start "HH:MM", end "HH:MM"}: all three required; the window may cross midnight."""
    body = json_body()
    return jsonify(workspace.set_quiet_hours(body.get("enabled"), body.get("start"), body.get("end"),
                                             current_actor()).as_json())


def caps_json(rules: list[workspace.CapRule]) -> dict:
    return {"rules": [r.as_json() for r in rules]}


@bp.get("/settings/frequency-caps")
@roles(*ADMINS)
def frequency_caps_read():
    return jsonify(caps_json(workspace.frequency_caps()))


@bp.put("/settings/frequency-caps")
@roles(*ADMINS)
def frequency_caps_update():
    """{rules: [{channel, limit, window}]}: the whole list (an empty list turns caps off)."""
    return jsonify(caps_json(workspace.set_frequency_caps(json_body().get("rules"), current_actor())))
