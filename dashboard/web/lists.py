"""Audiences → Lists: static lists of userIds (index, create, members, paste or CSV import
through a validation preview, remove, rename, delete), and "Save recipients as a list" on the
campaign page."""

from __future__ import annotations

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from wtforms import SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import Length

from dashboard.access import ALL_ROLES, WRITERS, current_actor, roles
from dashboard.errors import AppError, LifecycleError, ValidationError
from dashboard.models import RecipientStatus
from dashboard.services import campaigns as campaign_service
from dashboard.services import lists as service
from dashboard.web.campaign_forms import AddRecipientsForm, UploadForm, parse_user_ids
from dashboard.web.forms import ConfirmForm, HeraldForm

bp = Blueprint("lists", __name__, url_prefix="/audiences/lists")

STATUS_CHOICES = [SelectChoice("", "Every recipient"), SelectChoice(RecipientStatus.SENT, "Only those sent to"),
                  SelectChoice(RecipientStatus.FAILED, "Only those that failed"),
                  SelectChoice(RecipientStatus.SKIPPED, "Only those skipped"),
                  SelectChoice(RecipientStatus.PENDING, "Only those still pending")]


class ListForm(HeraldForm):
    name = StringField("Name", validators=[Length(max=service.MAX_NAME)])
    description = TextAreaField("Description (optional)", validators=[Length(max=service.MAX_DESCRIPTION)],
                                render_kw={"rows": 2})


class SaveAsListForm(HeraldForm):
    name = StringField("List name", validators=[Length(max=service.MAX_NAME)])
    status = SelectField("Who", choices=STATUS_CHOICES)


def _htmx() -> bool:
    return bool(request.headers.get("HX-Request"))


def _field_errors(form, err: AppError) -> bool:
    """Put a service error on its form field; False when it names no field of the form."""
    placed = False
    for detail in err.details:
        field = getattr(form, str(detail.get("field")), None) if isinstance(detail, dict) else None
        if field is not None and hasattr(field, "errors"):
            field.errors = [*field.errors, f"{detail['message'][:1].upper()}{detail['message'][1:]}."]
            placed = True
    return placed


@bp.get("")
@roles(*ALL_ROLES)
def index():
    return render_template("audiences/lists.html", lists=service.list_all())


@bp.route("/new", methods=["GET", "POST"])
@roles(*WRITERS)
def create():
    form = ListForm()
    error = None
    if form.validate_on_submit():
        try:
            made = service.create(form.name.data, form.description.data, current_actor())
        except AppError as err:
            if not _field_errors(form, err):
                error = err.message
        else:
            flash(f"Created the list “{made.name}”. Add userIds by pasting them or uploading a CSV.", "success")
            return redirect(url_for("lists.show", list_id=made.id))
    status = 400 if request.method == "POST" else 200
    return render_template("audiences/lists_new.html", form=form, error=error), status


def _show(user_list, status: int = 200, **extra):
    cursor = request.args.get("cursor") or None
    try:
        page = service.members(user_list.id, cursor)
    except ValidationError:
        page, cursor = service.members(user_list.id), None
    context = {
        "user_list": user_list, "page": page, "cursor": cursor, "confirm": ConfirmForm(),
        "edit_form": extra.pop("edit_form", None) or ListForm(data={"name": user_list.name,
                                                                    "description": user_list.description}),
        "add_form": extra.pop("add_form", None) or AddRecipientsForm(),
        "upload_form": UploadForm(), "used_by": service.using_campaigns(user_list.id),
    }
    return render_template("audiences/lists_show.html", **context, **extra), status


@bp.get("/<int:list_id>")
@roles(*ALL_ROLES)
def show(list_id: int):
    return _show(service.get(list_id))


@bp.post("/<int:list_id>/edit")
@roles(*WRITERS)
def edit(list_id: int):
    service.get(list_id)
    form = ListForm()
    if form.validate_on_submit():
        try:
            service.update_list(list_id, {"name": form.name.data, "description": form.description.data},
                                current_actor())
        except AppError as err:
            if not _field_errors(form, err):
                flash(err.message, "error")
        else:
            flash("Saved the list’s name and description.", "success")
            return redirect(url_for("lists.show", list_id=list_id))
    return _show(service.get(list_id), 400, edit_form=form, edit_open=True)


@bp.post("/<int:list_id>/delete")
@roles(*WRITERS)
def delete(list_id: int):
    name = service.get(list_id).name
    try:
        service.delete_list(list_id, current_actor())
    except LifecycleError as err:
        flash(err.message, "error")
        return redirect(url_for("lists.show", list_id=list_id))
    flash(f"Deleted the list “{name}”.", "success")
    return redirect(url_for("lists.index"))


def _add_problems(err: AppError, lines: list[tuple[int, str]]) -> dict:
    by_line = []
    for detail in err.details[:20]:
        index = detail.get("index") if isinstance(detail, dict) else None
        if isinstance(index, int) and index < len(lines):
            number, user_id = lines[index]
            by_line.append(f"Line {number}: {detail['message']}")
    more = len(err.details) - len(by_line)
    if more > 0 and by_line:
        by_line.append(f"… and {more:,} more.")
    return {"message": err.message, "lines": by_line}


@bp.post("/<int:list_id>/members")
@roles(*WRITERS)
def add_members(list_id: int):
    user_list = service.get(list_id)
    form = AddRecipientsForm()
    lines = parse_user_ids(form.user_ids.data or "")
    try:
        if not form.validate():
            raise ValidationError("; ".join(e for errors in form.errors.values() for e in errors))
        if not lines:
            raise ValidationError("Enter at least one userId (one per line, or separated by commas).")
        outcome = service.add_members(list_id, [user_id for _, user_id in lines], current_actor())
    except AppError as err:
        problems = _add_problems(err, lines)
        if _htmx():
            return render_template("audiences/_list_add_form.html", user_list=user_list, add_form=form,
                                   add_problems=problems), 400
        return _show(user_list, 400, add_form=form, add_problems=problems)
    message = f"Added {outcome['added']:,} member{'s' if outcome['added'] != 1 else ''}"
    if outcome["alreadyMembers"]:
        message += f"; {outcome['alreadyMembers']:,} already in the list"
    flash(f"{message}. The list has {outcome['size']:,} now.", "success")
    target = url_for("lists.show", list_id=list_id)
    if _htmx():
        return "", 204, {"HX-Redirect": target}
    return redirect(target)


@bp.post("/<int:list_id>/members/remove")
@roles(*WRITERS)
def remove_members(list_id: int):
    service.get(list_id)
    form = ConfirmForm()
    if not form.validate_on_submit():
        flash("The form expired; try again.", "error")
        return redirect(url_for("lists.show", list_id=list_id))
    user_ids = request.form.getlist("user_id")
    try:
        outcome = service.remove_members(list_id, user_ids, current_actor())
    except AppError as err:
        flash(err.message, "error")
    else:
        shown = user_ids[0] if len(user_ids) == 1 else f"{outcome['removed']:,} members"
        flash(f"Removed {shown} from the list. It has {outcome['size']:,} now.", "success")
    return redirect(url_for("lists.show", list_id=list_id, cursor=request.form.get("cursor") or None))


@bp.post("/<int:list_id>/upload")
@roles(*WRITERS)
def upload(list_id: int):
    user_list = service.get(list_id)
    template = "audiences/_list_upload_preview.html" if _htmx() else "audiences/lists_upload.html"
    file = request.files.get("file")
    try:
        if file is None or not file.filename:
            raise ValidationError("Choose a CSV file to upload.")
        preview = service.check_csv(list_id, file.stream)
    except AppError as err:
        if _htmx():
            raise  # the error fragment lands in the form's error region; the chosen file stays
        return render_template(template, user_list=user_list, preview=None, error=err.message,
                               upload_form=UploadForm(), confirm=ConfirmForm()), err.status
    return render_template(template, user_list=user_list, preview=preview, error=None, upload_form=UploadForm(),
                           confirm=ConfirmForm(), filename=file.filename)


@bp.post("/<int:list_id>/uploads/<token>/confirm")
@roles(*WRITERS)
def confirm_upload(list_id: int, token: str):
    try:
        outcome = service.confirm_csv(list_id, token, current_actor())
    except AppError as err:
        flash(err.message, "error")
    else:
        flash(f"Imported {outcome['imported']:,} userIds ({outcome['added']:,} new, "
              f"{outcome['alreadyMembers']:,} already in the list). The list has {outcome['size']:,} now.", "success")
    return redirect(url_for("lists.show", list_id=list_id))


@bp.get("/<int:list_id>/uploads/<token>/rejected.csv")
@roles(*WRITERS)
def rejected_rows(list_id: int, token: str):
    return Response(service.rejected_csv(list_id, token), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="list-{list_id}-rejected-rows.csv"'})


@bp.post("/from-campaign/<int:campaign_id>")
@roles(*WRITERS)
def save_campaign(campaign_id: int):
    """The campaign page's "Save recipients as a list": a new list of its recipients."""
    campaign = campaign_service.get(campaign_id)
    form = SaveAsListForm()
    saved, error = None, None
    if form.validate_on_submit():
        try:
            saved = service.from_campaign(campaign_id, form.name.data, current_actor(), status=form.status.data or None)
        except AppError as err:
            if not _field_errors(form, err):
                error = err.message
    elif form.csrf_token.errors:
        error = "The form expired; reload the page and try again."
    if _htmx():
        return render_template("campaigns/_save_as_list.html", campaign=campaign, save_form=form, saved=saved,
                               save_error=error), 201 if saved else (200 if request.method == "GET" else 400)
    if saved:
        flash(f"Saved {saved.size:,} recipients as the list “{saved.name}”.", "success")
        return redirect(url_for("lists.show", list_id=saved.id))
    flash(error or "; ".join(e for errors in form.errors.values() for e in errors) or "Could not save the list.",
          "error")
    return redirect(url_for("campaigns.show", campaign_id=campaign_id) + "#save-as-list")
