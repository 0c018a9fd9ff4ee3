"""The signed-in person's own preferences: the time zone every page shows times in."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from dashboard.access import ALL_ROLES, roles
from dashboard.errors import AppError
from dashboard.services import accounts
from dashboard.web import timefmt
from dashboard.web.forms import ConfirmForm

bp = Blueprint("account", __name__, url_prefix="/account")


@bp.get("/preferences")
@roles(*ALL_ROLES)
def preferences():
    return render_template("account/preferences.html", form=ConfirmForm(), zone=timefmt.viewer_zone_name(),
                           remembered=current_user.timezone)


@bp.post("/timezone")
@roles(*ALL_ROLES)
def set_timezone():
    """The picker's form, or app.js saying the browser's zone once (auto=1: only if none is set)."""
    auto = request.form.get("auto") == "1"
    raw = (request.form.get("timezone") or "").strip()
    name = timefmt.canonical(raw)
    try:
        if name is None:
            raise AppError(f"“{raw[:64]}” is not a time zone in the list; pick one from it.")
        changed = accounts.set_timezone(current_user.id, name, only_if_unset=auto)
    except AppError as err:
        if auto:
            return {"error": err.message}, 400
        flash(err.message, "error")
        return redirect(url_for("account.preferences"))
    if auto:
        return {"timezone": name, "changed": changed}
    flash(f"Times are now shown in {name.replace('_', ' ')}.", "success")
    return redirect(url_for("account.preferences"))
