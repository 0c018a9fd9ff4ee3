"""/api/v1/segments: saved segments (filters over the user directory) and their counts."""

from __future__ import annotations

from flask import jsonify

from dashboard.access import ALL_ROLES, WRITERS, current_actor, roles
from dashboard.api.common import bp, json_body
from dashboard.errors import ValidationError
from dashboard.models import Segment
from dashboard.services import segments as service


def _iso(value):
    return value.isoformat() if value else None


def segment_json(segment: Segment) -> dict:
    return {"id": segment.id, "name": segment.name, "description": segment.description,
            "definition": segment.definition, "createdBy": segment.created_by,
            "createdAt": _iso(segment.created_at), "updatedAt": _iso(segment.updated_at)}


@bp.post("/segments")
@roles(*WRITERS)
def segment_create():
    return jsonify(segment_json(service.create(json_body(), current_actor()))), 201


@bp.get("/segments")
@roles(*ALL_ROLES)
def segment_list():
    return jsonify({"items": [segment_json(s) for s in service.list_all()], "nextCursor": None})


@bp.post("/segments/count")
@roles(*WRITERS)  # a builder's tool, like every POST: support reads saved segments' counts by GET
def segment_preview_count():
    """The count of an unsaved definition (a builder's filter as it is being edited)."""
    body = json_body()
    if "definition" not in body:
        raise ValidationError("definition: is required", [{"field": "definition", "message": "is required"}])
    return jsonify({"count": service.count(body["definition"], check_refs=True), "total": service.total_users()})


@bp.get("/segments/<int:segment_id>")
@roles(*ALL_ROLES)
def segment_read(segment_id: int):
    return jsonify(segment_json(service.get(segment_id)))


@bp.patch("/segments/<int:segment_id>")
@roles(*WRITERS)
def segment_edit(segment_id: int):
    return jsonify(segment_json(service.update(segment_id, json_body(), current_actor())))


@bp.delete("/segments/<int:segment_id>")
@roles(*WRITERS)
def segment_delete(segment_id: int):
    service.delete(segment_id, current_actor())
    return "", 204


@bp.get("/segments/<int:segment_id>/count")
@roles(*ALL_ROLES)
def segment_count(segment_id: int):
    """Counted now, against the directory as it is (segments are dynamic until a send freezes them)."""
    segment = service.get(segment_id)
    return jsonify({"count": service.count(segment.definition), "total": service.total_users()})
