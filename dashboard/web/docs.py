"""The API reference page: the OpenAPI document rendered by the vendored Redoc bundle."""

from __future__ import annotations

import secrets

from flask import Blueprint, render_template

from dashboard.access import ALL_ROLES, roles
from dashboard.api.openapi import document_response
from dashboard.web.security import CSP

bp = Blueprint("docs", __name__, url_prefix="/docs")


@bp.get("/api")
@roles(*ALL_ROLES)
def api_reference():
    """Redoc injects its styles as <style> elements and embeds its icon font as a data: URL: this
    page allows styles carrying its nonce and data: fonts (scripts stay 'self' only, as everywhere)."""
    nonce = secrets.token_urlsafe(16)
    html = render_template("docs/api.html", style_nonce=nonce)
    policy = CSP.replace("style-src 'self'", f"style-src 'self' 'nonce-{nonce}'") + "; font-src 'self' data:"
    return html, 200, {"Content-Security-Policy": policy}


@bp.get("/api/openapi.json")
@roles(*ALL_ROLES)
def api_document():
    """The same document as GET /api/v1/openapi.json, for a signed-in person (the API takes keys)."""
    return document_response()
