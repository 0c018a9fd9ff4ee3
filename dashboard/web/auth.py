from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user

from dashboard.access import ALL_ROLES, public, roles
from dashboard.errors import RateLimited, Unauthorized
from dashboard.services import accounts
from dashboard.web.forms import LoginForm

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths, so ?next= can't bounce users to another site."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/") and not target.startswith("//"):
            return target
    return url_for("home.index")


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    if current_user.is_authenticated:
        return redirect(url_for("home.index"))
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        try:
            account = accounts.authenticate(form.email.data, form.password.data, request.remote_addr)
        except (Unauthorized, RateLimited) as err:
            form.form_errors.append(err.message)
            status = err.status
        else:
            login_user(account)
            flash(f"Welcome, {account.email}.", "success")
            return redirect(_safe_next(request.args.get("next")))
    elif form.is_submitted():
        status = 400
    return render_template("auth/login.html", form=form), status


@bp.post("/logout")
@roles(*ALL_ROLES)
def logout():
    logout_user()
    flash("You have been signed out.", "info")
    return redirect(url_for("auth.login"))
