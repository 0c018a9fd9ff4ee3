"""Campaign pages: list, draft form, the campaign page with its recipients, CSV upload
with a validation preview and confirm, export."""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    flash,
    redirect,
    render_template,
    request,
    session,
    stream_with_context,
    url_for,
)
from sqlalchemy import select
from wtforms import SelectChoice

from dashboard import queries
from dashboard.access import ALL_ROLES, WRITERS, current_actor, roles
from dashboard.errors import AppError, LifecycleError, ValidationError
from dashboard.exports import recipients_csv_stream
from dashboard.extensions import db
from dashboard.models import CampaignStatus, Recipient, RecipientStatus, Template, TemplateStatus
from dashboard.services import campaigns as service
from dashboard.services import recipients, test_sends, uploads
from dashboard.services import templates as template_service
from dashboard.web import timefmt
from dashboard.web.campaign_forms import AddRecipientsForm, CampaignForm, UploadForm, add_problems, parse_user_ids
from dashboard.web.forms import ConfirmForm
from dashboard.web.live import TIMEZONES, send_form, spread_hint, status_context

bp = Blueprint("campaigns", __name__, url_prefix="/campaigns")


@bp.get("")
@roles(*ALL_ROLES)
def index():
    status = request.args.get("status") or None
    status = status if status in list(CampaignStatus) else None
    search = (request.args.get("q") or "").strip()
    page = queries.campaigns(status, search, limit=50, cursor=request.args.get("cursor"))
    return render_template("campaigns/index.html", page=page, status=status, search=search,
                           statuses=list(CampaignStatus))


def _template_label(template: Template) -> str:
    live = template_service.live_version(template)
    if live is None:
        return f"{template.name} (not approved yet)"
    newer = " · newer draft" if template.status == TemplateStatus.DRAFT else ""
    return f"{template.name} (v{live.version} live{newer})"


def _template_choices(form: CampaignForm) -> None:
    rows = db.session.scalars(select(Template).where(Template.status != TemplateStatus.ARCHIVED)
                              .order_by(Template.name)).all()
    form.template_id.choices = [SelectChoice(t.template_id, _template_label(t)) for t in rows]
    if request.method == "GET" and not form.template_id.data and rows:  # first load: a sendable template
        sendable = [t for t in rows if template_service.live_version(t) is not None]
        form.template_id.data = (sendable or rows)[0].template_id


def _defaults_from_request(template_id: str | None = None) -> dict:
    return {key[4:]: value for key, value in request.values.items() if key.startswith("var-") and value.strip()}


def _version_number(raw) -> int | None:
    return int(raw) if isinstance(raw, str) and raw.isdigit() and len(raw) < 9 else None


def _version_context(template_id: str | None, picked: int | None) -> dict:
    """The approved versions of the chosen template (newest first, the newest picked unless the
    draft picked another) and the picked version's variables."""
    template = db.session.scalar(select(Template).where(Template.template_id == template_id)) if template_id else None
    if template is None:
        return {"chosen_template": None, "versions": [], "picked": None, "schema": []}
    approved = template_service.approved_versions(template)
    if picked not in [v.version for v in approved]:
        picked = None
    version = service.pick_version(template, picked)
    versions = [SelectChoice(v.version, f"v{v.version}" + (" — newest" if i == 0 else "")
                             + f" · approved {timefmt.relative(v.approved_at)}") for i, v in enumerate(approved)]
    return {"chosen_template": template, "versions": versions, "schema": version.variable_schema,
            "picked": version.version if version.approved_at else None}


def _form_page(form: CampaignForm, campaign=None, defaults=None, status: int = 200):
    context = _version_context(form.template_id.data, _version_number(form.template_version.data))
    return render_template("campaigns/form.html", form=form, campaign=campaign, defaults=defaults or {},
                           **context), status


def _payload(form: CampaignForm) -> dict:
    threshold = form.failure_threshold.data
    return {"name": form.name.data or "", "templateId": form.template_id.data,
            "templateVersion": _version_number(form.template_version.data), "channel": form.channel.data,
            "deliveryMode": form.delivery_mode.data,
            "failureThreshold": (threshold / 100) if threshold else 0.5,
            "trackClicks": bool(form.track_clicks.data),
            "variables": _defaults_from_request(form.template_id.data)}


def _apply(form: CampaignForm, err: ValidationError) -> None:
    fields = {"name": form.name, "templateId": form.template_id, "templateVersion": form.template_version,
              "channel": form.channel,
              "deliveryMode": form.delivery_mode, "failureThreshold": form.failure_threshold}
    for detail in err.details:
        field = fields.get(detail.get("field"))
        if field is not None:
            field.errors = [*field.errors, detail["message"]]
        else:
            form.form_errors.append(f"{detail.get('field', '').replace('variables.', 'Default for ')}: "
                                    f"{detail['message']}")


@bp.route("/new", methods=["GET", "POST"])
@roles(*WRITERS)
def create():
    form = CampaignForm()
    _template_choices(form)
    if request.method == "GET":
        if request.args.get("template"):
            form.template_id.data = request.args["template"]
        if not form.template_id.choices:
            flash("Create a template first: a campaign sends a template's content.", "info")
        return _form_page(form)
    if form.validate():
        try:
            campaign = service.create(_payload(form), current_actor())
        except ValidationError as err:
            _apply(form, err)
        else:
            flash(f"Draft “{campaign.name}” created. Now add recipients.", "success")
            return redirect(url_for("campaigns.show", campaign_id=campaign.id))
    return _form_page(form, defaults=_defaults_from_request(form.template_id.data), status=400)


@bp.route("/<int:campaign_id>/edit", methods=["GET", "POST"])
@roles(*WRITERS)
def edit(campaign_id: int):
    campaign = service.get(campaign_id)
    if not campaign.is_draft:
        flash(f"This campaign is {campaign.status}; only drafts can be changed.", "error")
        return redirect(url_for("campaigns.show", campaign_id=campaign_id))
    if request.method == "GET":
        form = CampaignForm(data={"name": campaign.name, "template_id": campaign.template.template_id,
                                  "template_version": str(campaign.template_version or ""),
                                  "channel": campaign.channel, "delivery_mode": campaign.delivery_mode,
                                  "failure_threshold": round(campaign.failure_threshold * 100),
                                  "track_clicks": campaign.track_clicks})
        _template_choices(form)
        return _form_page(form, campaign, defaults=campaign.variables)
    form = CampaignForm()
    _template_choices(form)
    if form.validate():
        try:
            service.edit(campaign_id, _payload(form), current_actor())
        except ValidationError as err:
            _apply(form, err)
        except LifecycleError as err:
            flash(err.message, "error")
            return redirect(url_for("campaigns.show", campaign_id=campaign_id))
        else:
            flash("Draft saved.", "success")
            return redirect(url_for("campaigns.show", campaign_id=campaign_id))
    return _form_page(form, campaign, defaults=_defaults_from_request(form.template_id.data), status=400)


@bp.get("/_defaults")
@roles(*WRITERS)
def defaults_fields():
    """HTMX: the version picker and the default-value inputs for the chosen template (or version);
    values typed so far are kept."""
    context = _version_context(request.args.get("template_id"), _version_number(request.args.get("template_version")))
    return (render_template("campaigns/_version_pick.html", **context)
            + render_template("campaigns/_defaults.html", defaults=_defaults_from_request(), oob=True, **context))


def _recipients_context(campaign):
    status = request.args.get("status") or None
    status = status if status in list(RecipientStatus) else None
    search = (request.args.get("q") or request.args.get("userId") or "").strip()
    number = request.args.get("page", type=int) or 1
    table = queries.recipients_table(campaign, status, search, page=number, after=request.args.get("after"),
                                     before=request.args.get("before"))
    return {"campaign": campaign, "rpage": table, "rstatus": status, "rsearch": search,
            "rstatuses": list(RecipientStatus), "confirm": ConfirmForm()}


@bp.get("/<int:campaign_id>")
@roles(*ALL_ROLES)
def show(campaign_id: int):
    return _show_page(service.get(campaign_id))


def _show_page(campaign, status: int = 200, **overrides):
    context = _recipients_context(campaign)
    context.update(status_context(campaign))
    if campaign.total:
        context.update(_preview_context(campaign))
    if campaign.is_draft:
        context["estimate"] = queries.send_estimate(campaign)
        typed = session.pop("schedule_typed", None)  # a refused send: show what was typed
        typed = typed if typed and typed.get("campaign") == campaign.id else None
        context["schedule_typed"] = typed if typed and "local" in typed else None
        context["send_form"] = form = send_form(typed)
        context["spread_text"] = spread_hint(campaign, form.spread_minutes.data)
        context["test_outcome"] = queries.latest_test(campaign.id)
    if not campaign.is_draft:
        context["engagement"] = queries.engagement(campaign)
        context["timeline"] = _timeline(campaign)
    if campaign.is_draft and campaign.total:
        context["missing_vars"] = queries.missing_required(campaign)
    version = service.send_version(campaign)  # the picked (or pinned) version, not the template's newest
    context["send_version"] = version
    context["version_sendable"] = bool(version.approved_at) and campaign.template.status != TemplateStatus.ARCHIVED
    context.update(overrides)
    context.setdefault("add_form", AddRecipientsForm())
    return render_template("campaigns/show.html", upload_form=UploadForm(), timezones=TIMEZONES, **context), status


def _timeline(campaign) -> list[tuple[int, int]]:
    """Deliveries over time; cached once the campaign is final (it cannot change then)."""
    import json

    from dashboard.extensions import get_redis

    final = campaign.status in (CampaignStatus.SENT, CampaignStatus.FAILED, CampaignStatus.CANCELLED)
    key = f"herald:timeline:{campaign.id}"
    if final:
        try:
            cached = get_redis().get(key)
            if cached:
                return [tuple(x) for x in json.loads(cached)]
        except Exception:  # the chart is decoration; Redis trouble must not break the page
            pass
    points = queries.delivery_timeline(campaign)
    if final:
        try:
            get_redis().set(key, json.dumps(points), ex=3600)
        except Exception:
            pass
    return points


@bp.get("/<int:campaign_id>/_engagement")
@roles(*ALL_ROLES)
def engagement(campaign_id: int):
    """HTMX: engagement figures, re-read when a live send finishes."""
    campaign = service.get(campaign_id)
    return render_template("campaigns/_engagement.html", campaign=campaign,
                           engagement=queries.engagement(campaign), timeline=_timeline(campaign))


@bp.get("/<int:campaign_id>/_preview")
@roles(*ALL_ROLES)
def preview_as(campaign_id: int):
    """HTMX (or plain GET): the message as one recipient receives it."""
    campaign = service.get(campaign_id)
    return render_template("campaigns/_preview_as.html", campaign=campaign, **_preview_context(campaign))


def _preview_context(campaign) -> dict:
    user_id = (request.args.get("previewUser") or "").strip()
    stmt = select(Recipient.user_id, Recipient.variables).where(Recipient.campaign_id == campaign.id)
    stmt = stmt.where(Recipient.user_id == user_id) if user_id else stmt.order_by(Recipient.id)
    row = db.session.execute(stmt.limit(1)).first()
    sample = recipients.preview_rows(campaign, [(row.user_id, row.variables or {})])[0] if row else None
    return {"preview_user": user_id or (row.user_id if row else ""), "sample": sample,
            "missing": bool(user_id) and row is None}


@bp.get("/<int:campaign_id>/_recipients")
@roles(*ALL_ROLES)
def recipients_table(campaign_id: int):
    """HTMX: filter, search and page the recipients table in place; the address bar shows the
    campaign page with the same filters (back button, reload), except for the live refresh."""
    body = render_template("campaigns/_recipients.html", **_recipients_context(service.get(campaign_id)))
    if request.headers.get("HX-Trigger") == "recipients-table":
        return body
    shown = {k: v for k, v in request.args.items() if k in ("status", "q", "page", "after", "before") and v}
    return body, 200, {"HX-Push-Url": url_for("campaigns.show", campaign_id=campaign_id, **shown)}


@bp.post("/<int:campaign_id>/delete")
@roles(*WRITERS)
def delete(campaign_id: int):
    try:
        name = service.get(campaign_id).name
        service.delete_draft(campaign_id, current_actor())
    except LifecycleError as err:
        flash(err.message, "error")
        return redirect(url_for("campaigns.show", campaign_id=campaign_id))
    flash(f"Draft “{name}” deleted.", "success")
    return redirect(url_for("campaigns.index"))


@bp.post("/<int:campaign_id>/recipients")
@roles(*WRITERS)
def add_recipients(campaign_id: int):
    """Hand-typed IDs; on a problem the form comes back with its text and the problems by line."""
    form = AddRecipientsForm()
    lines = parse_user_ids(form.user_ids.data or "")
    defaults = {key[8:]: value for key, value in request.form.items() if key.startswith("default-") and value.strip()}
    try:
        if not lines:
            raise ValidationError("Enter at least one user ID (one per line, or separated by commas).")
        result = recipients.add_manual(campaign_id, [user_id for _, user_id in lines], None, current_actor(),
                                       campaign_defaults=defaults)
    except (ValidationError, LifecycleError) as err:
        campaign = service.get(campaign_id)
        problems = add_problems(err, lines, service.send_version(campaign).variable_schema)
        if request.headers.get("HX-Request"):
            return render_template("campaigns/_add_ids_form.html", campaign=campaign, add_form=form,
                                   add_problems=problems), 400
        return _show_page(campaign, 400, add_form=form, add_problems=problems)
    added, merged = result["added"], result["merged"]
    message = f"Added {added:,} recipient{'s' if added != 1 else ''}"
    if merged:
        message += f", merged {merged:,} duplicate{'s' if merged != 1 else ''}"
    if defaults:
        message += f" (campaign default set for {', '.join(sorted(defaults))})"
    flash(f"{message}. Total: {result['total']:,}.", "success")
    target = url_for("campaigns.show", campaign_id=campaign_id) + "#recipients"
    if request.headers.get("HX-Request"):
        return "", 204, {"HX-Redirect": target, "HX-Refresh": "true"}  # same page: a hash change alone would not reload
    return redirect(target)


@bp.post("/<int:campaign_id>/recipients/clear")
@roles(*WRITERS)
def clear_recipients(campaign_id: int):
    try:
        removed = recipients.clear(campaign_id, current_actor())
        flash(f"Removed all {removed:,} recipients.", "success")
    except LifecycleError as err:
        flash(err.message, "error")
    return redirect(url_for("campaigns.show", campaign_id=campaign_id) + "#recipients")


@bp.post("/<int:campaign_id>/upload")
@roles(*WRITERS)
def upload(campaign_id: int):
    campaign = service.get(campaign_id)
    form = UploadForm()
    htmx = bool(request.headers.get("HX-Request"))
    template = "campaigns/_upload_preview.html" if htmx else "campaigns/upload_preview.html"
    file = request.files.get("file")
    try:
        if file is None or not file.filename:
            raise ValidationError("Choose a CSV file to upload.")
        preview = uploads.validate_upload(campaign_id, file.stream)
    except AppError as err:
        if htmx:
            raise  # the error fragment lands in the form's error region; the chosen file stays
        return render_template(template, campaign=campaign, preview=None, error=err.message, form=form,
                               confirm=ConfirmForm()), err.status
    return render_template(template, campaign=campaign, preview=preview, error=None, form=form,
                           confirm=ConfirmForm(), filename=file.filename)


@bp.post("/<int:campaign_id>/uploads/<token>/confirm")
@roles(*WRITERS)
def confirm_upload(campaign_id: int, token: str):
    try:
        outcome = uploads.confirm(campaign_id, token, current_actor())
    except AppError as err:
        flash(err.message, "error")
    else:
        flash(f"Imported {outcome['imported']:,} recipients ({outcome['added']:,} new, {outcome['merged']:,} updated). "
              f"Total: {outcome['total']:,}.", "success")
    return redirect(url_for("campaigns.show", campaign_id=campaign_id) + "#recipients")


def _csv_response(body, filename: str) -> Response:
    return Response(body, mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@bp.get("/<int:campaign_id>/uploads/<token>/rejected.csv")
@roles(*WRITERS)
def rejected_rows(campaign_id: int, token: str):
    return _csv_response(uploads.rejected_csv(campaign_id, token), f"campaign-{campaign_id}-rejected-rows.csv")


@bp.get("/<int:campaign_id>/recipients.csv")
@roles(*ALL_ROLES)
def export(campaign_id: int):
    campaign = service.get(campaign_id)
    return _csv_response(stream_with_context(recipients_csv_stream(campaign)),
                         f"campaign-{campaign.id}-recipients.csv")


def _test_send_page(campaign, status: int = 200, **extra):
    outcome = queries.latest_test(campaign.id)
    body = render_template("campaigns/_test_send.html", campaign=campaign, test=outcome, confirm=ConfirmForm(),
                           **extra)
    return body, 286 if status == 200 and outcome and outcome.finished and request.headers.get(
        "HX-Trigger") == "test-send" else status


@bp.post("/<int:campaign_id>/test")
@roles(*WRITERS)
def test_send(campaign_id: int):
    """Send the draft to a few chosen userIds/emails now (HTMX: the test box; else back to the page)."""
    typed = request.form.get("targets") or ""
    targets = [t for t in typed.replace(",", "\n").splitlines() if t.strip()]
    try:
        test_sends.send(campaign_id, targets, current_actor())
    except (ValidationError, LifecycleError) as err:
        if request.headers.get("HX-Request"):
            return _test_send_page(service.get(campaign_id), err.status, test_error=err.message, test_typed=typed)
        flash(err.message, "error")
    else:
        if request.headers.get("HX-Request"):
            return _test_send_page(service.get(campaign_id))
        flash(f"Test sent to {len(targets)} recipient{'s' if len(targets) != 1 else ''}.", "success")
    return redirect(url_for("campaigns.show", campaign_id=campaign_id) + "#test-send")


@bp.get("/<int:campaign_id>/_test")
@roles(*WRITERS)
def test_send_status(campaign_id: int):
    """HTMX: the test box with the latest test's outcome; 286 stops the poll once it has finished."""
    return _test_send_page(service.get(campaign_id))
