"""Read-mostly pages: support lookup by userId, the user directory with "view as user" (its
attributes, the CSV import with its typed preview), the one-call notification log, and the audit log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from dashboard import queries
from dashboard.access import ALL_ROLES, WRITERS, roles
from dashboard.errors import AppError, NotFound, ValidationError
from dashboard.extensions import db
from dashboard.models import Account, Notification, User
from dashboard.services import attributes, users
from dashboard.services import users_import as users_import_service
from dashboard.web.campaign_forms import UploadForm

bp = Blueprint("support", __name__)


@bp.get("/support")
@roles(*ALL_ROLES)
def lookup():
    user_id = (request.args.get("userId") or "").strip()
    rows = queries.deliveries_for_user(user_id) if user_id else []
    user = db.session.get(User, user_id) if user_id else None
    return render_template("support/lookup.html", user_id=user_id, rows=rows, user=user)


@bp.get("/users")
@roles(*ALL_ROLES)
def users_index():
    search = (request.args.get("q") or "").strip()
    after = request.args.get("after") or None
    rows = queries.users(search, limit=51, after=after)
    return render_template("support/users.html", users=rows[:50], more=len(rows) > 50, search=search,
                           form=UploadForm())


@bp.post("/users/import")
@roles(*WRITERS)
def users_import():
    file = request.files.get("file")
    try:
        if file is None or not file.filename:
            raise AppError("Choose a CSV file with a userId column (and name, email, timezone if you have them).")
        token = users_import_service.stage(file.stream)
    except AppError as err:
        flash(err.message, "error")
        return redirect(url_for("support.users_index"))
    return redirect(url_for("support.users_import_review", token=token))


def _chosen() -> dict[str, str]:
    """The attribute types picked in the preview: fields named type-<column>."""
    source = request.form if request.method == "POST" else request.args
    return {k[5:]: v for k, v in source.items() if k.startswith("type-")}


@bp.get("/users/import/<token>")
@roles(*WRITERS)
def users_import_review(token: str):
    preview = users_import_service.preview(token, _chosen())
    return render_template("support/users_import.html", preview=preview, types=attributes.TYPES)


@bp.get("/users/import/<token>/preview")
@roles(*WRITERS)
def users_import_types(token: str):
    """The preview again with the types chosen so far (HTMX, on changing a type)."""
    preview = users_import_service.preview(token, _chosen())
    return render_template("support/_users_import_preview.html", preview=preview, types=attributes.TYPES)


@bp.post("/users/import/<token>")
@roles(*WRITERS)
def users_import_confirm(token: str):
    try:
        result = users_import_service.confirm(token, _chosen())
    except AppError as err:
        flash(err.message, "error")
        return redirect(url_for("support.users_index"))
    message = f"Imported users: {result['created']:,} new, {result['updated']:,} updated."
    if result["errors"]:
        shown = "; ".join(f"row {e['row']}: {e['message']}" for e in result["errors"][:5])
        message += f" {len(result['errors']):,} rows skipped ({shown}{'; …' if len(result['errors']) > 5 else ''})."
    flash(message, "warning" if result["errors"] else "success")
    return redirect(url_for("support.users_index"))


def _user_page(user_id: str, user: User | None, status: int = 200, form: dict | None = None,
               errors: dict | None = None):
    feed = db.session.scalars(select(Notification).where(Notification.user_id == user_id)
                              .order_by(Notification.id.desc()).limit(50)).all()
    unread = sum(1 for n in feed if n.read_at is None)
    registry = attributes.types()
    rows = []
    for name, value in sorted((user.attributes or {}).items() if user else (), key=lambda item: item[0].lower()):
        type_ = registry.get(name) or attributes.infer(value)
        rows.append({"name": name, "type": type_, "value": value, "shown": attributes.display(value, type_)})
    return render_template("support/user.html", user_id=user_id, user=user, feed=feed, unread=unread,
                           attribute_rows=rows, registry=registry, types=attributes.TYPES,
                           attr_form=form or {}, attr_errors=errors or {}), status


@bp.get("/users/<user_id>")
@roles(*ALL_ROLES)
def user_view(user_id: str):
    return _user_page(user_id, db.session.get(User, user_id))


def _directory_user(user_id: str) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound(f"No user {user_id} in the directory.")
    return user


def _save_attribute(user: User, name: str, value) -> dict:
    entry = {"userId": user.user_id, "name": user.name, "email": user.email, "timezone": user.timezone,
             "attributes": {name: value}}
    types = {name: request.form.get("type", "")} if value is not None else None
    return users.upsert([entry], types)


@bp.post("/users/<user_id>/attributes")
@roles(*WRITERS)
def user_attribute_set(user_id: str):
    user = _directory_user(user_id)
    form = {k: request.form.get(k, "") for k in ("name", "type", "value")}
    name = form["name"].strip()
    form["name"] = name
    errors = {}
    if problem := attributes.name_problem(name):
        errors["name"] = problem
    else:
        type_ = attributes.types().get(name) or form["type"]
        if type_ not in attributes.TYPES:
            errors["type"] = "Choose a type: string, number, boolean or date."
        else:
            try:
                value = attributes.parse_text(form["value"], type_)
            except ValueError as err:
                errors["value"] = f"{name} is {attributes.ARTICLE[type_]} attribute; {err}"
    if not errors:
        result = _save_attribute(user, name, value)
        if result["errors"]:
            errors["value"] = result["errors"][0]["message"]
    if errors:
        db.session.expire_all()
        return _user_page(user_id, db.session.get(User, user_id), 400, form, errors)
    flash(f"Saved {name}.", "success")
    return redirect(url_for("support.user_view", user_id=user_id) + "#attributes")


@bp.post("/users/<user_id>/attributes/remove")
@roles(*WRITERS)
def user_attribute_remove(user_id: str):
    user = _directory_user(user_id)
    name = request.form.get("name", "")
    if problem := attributes.name_problem(name):
        raise ValidationError(problem, [{"field": "name", "message": problem}])
    _save_attribute(user, name, None)
    flash(f"Removed {name}.", "success")
    return redirect(url_for("support.user_view", user_id=user_id) + "#attributes")


@bp.get("/notifications")
@roles(*ALL_ROLES)
def notification_log():
    page = queries.campaigns(None, None, limit=50, cursor=request.args.get("cursor"), kind="notification")
    return render_template("support/notifications.html", page=page)


def _day(name: str):
    """A YYYY-MM-DD filter as the start of that UTC day; anything else is ignored."""
    try:
        return datetime.strptime((request.args.get(name) or "").strip(), "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None


@bp.get("/audit")
@roles(*ALL_ROLES)
def audit_log():
    until = _day("to")
    filters = queries.AuditFilters(
        campaign=(request.args.get("campaign") or "").strip()[:200], account_id=request.args.get("account", type=int),
        action=request.args.get("action") or "", since=_day("from"), until=until + timedelta(days=1) if until else None)
    page = queries.audit_events(filters, limit=50, cursor=request.args.get("cursor"))
    accounts = db.session.scalars(select(Account).order_by(Account.email)).all()
    args = {"campaign": filters.campaign or None, "account": filters.account_id,
            "action": filters.action if filters.action in queries.AUDIT_ACTIONS else None,
            "from": request.args.get("from") if filters.since else None,
            "to": request.args.get("to") if until else None}
    return render_template("support/audit.html", page=page, rows=queries.audit_rows(page.items), filters=filters,
                           args=args, accounts=accounts, actions=list(queries.AUDIT_ACTIONS))
