"""Audiences → Lists: static lists of userIds (index, create, members, CSV import, delete)."""

from __future__ import annotations

from flask import Blueprint, render_template

from dashboard.access import ALL_ROLES, roles

bp = Blueprint("lists", __name__, url_prefix="/audiences/lists")


@bp.get("")
@roles(*ALL_ROLES)
def index():
    return render_template("audiences/lists.html", lists=[])
