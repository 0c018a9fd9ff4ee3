"""/api/v1/lists: static lists of userIds, their members, CSV import, and saving a campaign's
recipients as a list."""

from __future__ import annotations

from flask import jsonify, request

from dashboard.access import ALL_ROLES, WRITERS, current_actor, roles
from dashboard.api import query
from dashboard.api.common import bp, idempotent, json_body
from dashboard.errors import ValidationError
from dashboard.models.user import UserList
from dashboard.services import lists as service


def _iso(value):
    return value.isoformat() if value else None


def list_json(user_list: UserList) -> dict:
    return {"id": user_list.id, "name": user_list.name, "description": user_list.description,
            "size": user_list.size, "createdBy": user_list.created_by, "createdAt": _iso(user_list.created_at),
            "updatedAt": _iso(user_list.updated_at)}


@bp.get("/lists")
@roles(*ALL_ROLES)
def list_index():
    search = request.args.get("q")
    if search is not None and len(search) > 200:
        raise ValidationError("q must be at most 200 characters.",
                              [{"field": "q", "message": "at most 200 characters"}])
    return jsonify({"items": [list_json(u) for u in service.list_all(search)]})


@bp.post("/lists")
@roles(*WRITERS)
@idempotent
def list_create():
    body = json_body()
    user_list = service.create(body.get("name"), body.get("description"), current_actor(), body.get("userIds"))
    return jsonify(list_json(user_list)), 201


@bp.get("/lists/<int:list_id>")
@roles(*ALL_ROLES)
def list_read(list_id: int):
    return jsonify(list_json(service.get(list_id)))


@bp.patch("/lists/<int:list_id>")
@roles(*WRITERS)
def list_edit(list_id: int):
    return jsonify(list_json(service.update_list(list_id, json_body(), current_actor())))


@bp.delete("/lists/<int:list_id>")
@roles(*WRITERS)
def list_delete(list_id: int):
    service.delete_list(list_id, current_actor())
    return "", 204


@bp.get("/lists/<int:list_id>/members")
@roles(*ALL_ROLES)
def list_members(list_id: int):
    page = service.members(list_id, request.args.get("cursor"), query.limit())
    return jsonify({"items": [{"userId": m.user_id, "addedAt": _iso(m.added_at)} for m in page.items],
                    "nextCursor": page.next_cursor})


@bp.post("/lists/<int:list_id>/members")
@roles(*WRITERS)
def list_members_add(list_id: int):
    return jsonify(service.add_members(list_id, json_body().get("userIds"), current_actor()))


@bp.post("/lists/<int:list_id>/members/remove")
@roles(*WRITERS)
def list_members_remove(list_id: int):
    return jsonify(service.remove_members(list_id, json_body().get("userIds"), current_actor()))


@bp.post("/lists/<int:list_id>/import")
@roles(*WRITERS)
def list_import(list_id: int):
    file = request.files.get("file")
    if file is None:
        raise ValidationError("Send the CSV as multipart/form-data in a field named 'file'.",
                              [{"field": "file", "message": "missing"}])
    if query.flag("dryRun"):
        preview = service.check_csv(list_id, file.stream)
        preview.pop("token")
        return jsonify(preview)
    return jsonify(service.import_now(list_id, file.stream, current_actor(), query.flag("skipInvalid")))


@bp.post("/campaigns/<int:campaign_id>/save-as-list")
@roles(*WRITERS)
@idempotent
def campaign_save_as_list(campaign_id: int):
    body = json_body()
    user_list = service.from_campaign(campaign_id, body.get("name"), current_actor(), status=body.get("status"),
                                      description=body.get("description"))
    return jsonify(list_json(user_list)), 201
