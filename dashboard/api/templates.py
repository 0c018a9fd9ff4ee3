from __future__ import annotations

from flask import jsonify, request

from dashboard import queries
from dashboard.access import ALL_ROLES, WRITERS, current_actor, roles
from dashboard.api import query
from dashboard.api.common import bp, json_body
from dashboard.errors import NotFound
from dashboard.models import Template, TemplateStatus, TemplateVersion
from dashboard.services import templates as service


def version_json(template: Template, version: TemplateVersion) -> dict:
    return {
        "templateId": template.template_id, "name": version.name, "category": template.category,
        "tags": template.tags, "status": template.status, "version": version.version,
        "channels": version.channels, "variableSchema": version.variable_schema,
        "approvedAt": version.approved_at.isoformat() if version.approved_at else None,
        "createdAt": template.created_at.isoformat(), "updatedAt": template.updated_at.isoformat(),
    }


def template_json(template: Template) -> dict:
    return version_json(template, template.current)


@bp.post("/templates")
@roles(*WRITERS)
def template_create():
    template = service.create(json_body(), current_actor())
    return jsonify(template_json(template)), 201


@bp.get("/templates")
@roles(*ALL_ROLES)
def template_list():
    page = queries.templates(query.choice("status", TemplateStatus), request.args.get("q"),
                             limit=query.limit(), cursor=request.args.get("cursor"))
    return jsonify({"items": [template_json(t) for t in page.items], "nextCursor": page.next_cursor})


@bp.get("/templates/<template_id>")
@roles(*ALL_ROLES)
def template_read(template_id: str):
    return jsonify(template_json(service.get(template_id)))


@bp.get("/templates/<template_id>/versions/<int:version>")
@roles(*ALL_ROLES)
def template_version(template_id: str, version: int):
    template = service.get(template_id)
    found = next((v for v in template.versions if v.version == version), None)
    if found is None:
        raise NotFound(f"Template {template_id} has no version {version}.")
    return jsonify(version_json(template, found))


@bp.patch("/templates/<template_id>")
@roles(*WRITERS)
def template_edit(template_id: str):
    return jsonify(template_json(service.update(template_id, json_body(), current_actor())))


@bp.post("/templates/<template_id>/approve")
@roles(*WRITERS)
def template_approve(template_id: str):
    return jsonify(template_json(service.transition(template_id, "approve", current_actor())))


@bp.post("/templates/<template_id>/archive")
@roles(*WRITERS)
def template_archive(template_id: str):
    return jsonify(template_json(service.transition(template_id, "archive", current_actor())))
