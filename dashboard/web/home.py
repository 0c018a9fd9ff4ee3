from __future__ import annotations

from flask import Blueprint, render_template

from dashboard import queries
from dashboard.access import ALL_ROLES, roles

bp = Blueprint("home", __name__)


@bp.get("/")
@roles(*ALL_ROLES)
def index():
    recent = queries.campaigns(limit=5).items
    return render_template("home/index.html", recent=recent)
