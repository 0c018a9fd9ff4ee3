"""Template pages: list, editor with variable table and live preview, approve/archive, versions."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from dashboard import queries, rendering
from dashboard.access import ALL_ROLES, WRITERS, current_actor, roles
from dashboard.errors import LifecycleError, ValidationError
from dashboard.models import TemplateStatus
from dashboard.services import templates as service
from dashboard.services import workspace
from dashboard.services.control import FourEyesRequired
from dashboard.web.forms import ConfirmForm
from dashboard.web.template_forms import (
    TemplateForm,
    apply_errors,
    data_from_template,
    payload_from_form,
    problem_messages,
)

bp = Blueprint("templates", __name__, url_prefix="/templates")


@bp.get("")
@roles(*ALL_ROLES)
def index():
    status = request.args.get("status") or None
    if status not in (None, *TemplateStatus):
        status = None
    search = (request.args.get("q") or "").strip()
    page = queries.templates(status, search, limit=50, cursor=request.args.get("cursor"))
    return render_template("templates/index.html", page=page, status=status, search=search,
                           statuses=list(TemplateStatus),
                           states={t.id: service.version_state(t) for t in page.items})


def preview_context(payload: dict, problems: list[str] | None = None) -> dict:
    """Render the in-app and email content with sample values (or defaults, or [key]); a
    placeholder the schema does not declare stays visible as {{ key }}, never dropped."""
    values = {}
    for content in payload.get("channels", {}).values():
        for text in content.values():
            values.update({key: f"{{{{ {key} }}}}" for key in rendering.placeholders(text)})
    for var in payload.get("variableSchema", []):
        key = var.get("key")
        if key:
            values[key] = var.get("sample") or var.get("defaultValue") or f"[{key}]"
    rendered = {}
    for channel, content in payload.get("channels", {}).items():
        rendered[channel] = {field: rendering.render(text, values, html=(field == "html"))
                             for field, text in content.items()}
    image = rendered.get("in_app", {}).get("imageUrl", "")
    return {"rendered": rendered, "image_ok": rendering.is_http_url(image) if image else False,
            "problems": problems or []}


def _live_preview(form: TemplateForm) -> dict:
    """The editor's preview, with the schema problems of the unsaved content (as you type)."""
    payload, rows = payload_from_form(form)
    return preview_context(payload, problem_messages(service.content_problems(payload), payload, rows))


def _editor(form: TemplateForm, template=None, status: int = 200):
    return render_template("templates/edit.html", form=form, template=template,
                           preview=_live_preview(form)), status


def _schema_intent(form: TemplateForm) -> bool:
    """Add/remove a variable row (the no-JavaScript path); True when the form was changed."""
    intent = request.form.get("intent", "save")
    if intent == "add-variable":
        form.variables.append_entry({"type": "string"})
        return True
    if intent.startswith("remove-variable-"):
        index = int(intent.rsplit("-", 1)[1]) if intent.rsplit("-", 1)[1].isdigit() else -1
        rows = [e.data for i, e in enumerate(form.variables.entries) if i != index]
        while form.variables.entries:
            form.variables.pop_entry()
        for row in rows:
            form.variables.append_entry(row)
        return True
    return False


@bp.route("/new", methods=["GET", "POST"])
@roles(*WRITERS)
def create():
    if request.method == "GET":
        return _editor(TemplateForm(data=data_from_template(None)))
    form = TemplateForm()
    if not form.validate() or _schema_intent(form):
        return _editor(form, status=200 if not form.errors else 400)
    payload, rows = payload_from_form(form)
    try:
        template = service.create(payload, current_actor())
    except ValidationError as err:
        apply_errors(form, err, rows)
        return _editor(form, status=400)
    flash(f"Template “{template.name}” saved as a draft (version 1).", "success")
    return redirect(url_for("templates.show", template_id=template.template_id))


@bp.get("/<template_id>")
@roles(*ALL_ROLES)
def show(template_id: str):
    template = service.get(template_id)
    version = template.current
    requested = request.args.get("version", type=int)
    if requested is not None:
        version = next((v for v in template.versions if v.version == requested), None)
        if version is None:
            abort(404)
    payload = {"channels": version.channels, "variableSchema": version.variable_schema}
    # four-eyes: the person who last edited the draft sees who must approve it instead of a button
    own_edit = template.status == TemplateStatus.DRAFT and service.own_edit(template.current, current_actor())
    return render_template("templates/show.html", template=template, version=version,
                           state=service.version_state(template), preview=preview_context(payload),
                           confirm=ConfirmForm(), own_edit=own_edit, four_eyes=workspace.four_eyes())


@bp.route("/<template_id>/edit", methods=["GET", "POST"])
@roles(*WRITERS)
def edit(template_id: str):
    template = service.get(template_id)
    if template.status == TemplateStatus.ARCHIVED:
        flash("Archived templates cannot be edited.", "error")
        return redirect(url_for("templates.show", template_id=template_id))
    if request.method == "GET":
        return _editor(TemplateForm(data=data_from_template(template)), template)
    form = TemplateForm()
    form.template_id.data = template.template_id
    if not form.validate() or _schema_intent(form):
        return _editor(form, template, status=200 if not form.errors else 400)
    payload, rows = payload_from_form(form)
    was_approved = template.status == TemplateStatus.APPROVED
    try:
        template = service.update(template_id, payload, current_actor())
    except ValidationError as err:
        apply_errors(form, err, rows)
        return _editor(form, template, status=400)
    if was_approved:
        flash(f"Saved as version {template.version} (a draft). Version {template.version - 1} is unchanged; "
              "approve the new version to use it in sends.", "success")
    else:
        flash(f"Draft saved (version {template.version}).", "success")
    return redirect(url_for("templates.show", template_id=template.template_id))


@bp.post("/<template_id>/<any(approve, archive):action>")
@roles(*WRITERS)
def transition(template_id: str, action: str):
    try:
        template = service.transition(template_id, action, current_actor())
    except (LifecycleError, ValidationError, FourEyesRequired) as err:
        flash(err.message, "error")
    else:
        flash(f"Template {template.status} (version {template.version}).", "success")
    return redirect(url_for("templates.show", template_id=template_id))


@bp.post("/_schema")
@roles(*WRITERS)
def schema_rows():
    """HTMX: add or remove a variable row and return the re-rendered table."""
    form = TemplateForm()
    _schema_intent(form)
    response = render_template("templates/_schema_table.html", form=form)
    return response, 200, {"HX-Trigger": "schema-changed"}


@bp.post("/_preview")
@roles(*WRITERS)
def preview():
    """HTMX: the live preview for the editor's current (unsaved) content."""
    return render_template("templates/_preview.html", preview=_live_preview(TemplateForm()))
