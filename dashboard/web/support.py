"""Read-mostly pages: support lookup by userId, the user directory with "view as user",
the one-call notification log, and the audit log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from dashboard import queries
from dashboard.access import ALL_ROLES, WRITERS, roles
from dashboard.errors import AppError
from dashboard.extensions import db
from dashboard.models import Account, Notification, User
from dashboard.services import users
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
        result = users.import_csv(file.stream)
    except AppError as err:
        flash(err.message, "error")
        return redirect(url_for("support.users_index"))
    message = f"Imported users: {result['created']:,} new, {result['updated']:,} updated."
    if result["errors"]:
        shown = "; ".join(f"row {e['row']}: {e['message']}" for e in result["errors"][:5])
        message += f" {len(result['errors']):,} rows skipped ({shown}{'; …' if len(result['errors']) > 5 else ''})."
    flash(message, "warning" if result["errors"] else "success")
    return redirect(url_for("support.users_index"))


@bp.get("/users/<user_id>")
@roles(*ALL_ROLES)
def user_view(user_id: str):
    user = db.session.get(User, user_id)
    feed = db.session.scalars(select(Notification).where(Notification.user_id == user_id)
                              .order_by(Notification.id.desc()).limit(50)).all()
    unread = sum(1 for n in feed if n.read_at is None)
    return render_template("support/user.html", user_id=user_id, user=user, feed=feed, unread=unread)


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
