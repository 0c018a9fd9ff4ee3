"""The public click redirect of tracked email links: /c/<token>. No login (the people who click
are the campaign's recipients) and no CSRF (a GET that only records a click). A token Herald did
not sign is a 400 page, never a redirect, so the route cannot send anyone to a URL of an
attacker's choosing."""

from __future__ import annotations

from flask import Blueprint, redirect

from dashboard.access import public
from dashboard.errors import error_response
from dashboard.services import clicks

bp = Blueprint("clicks", __name__)


@bp.get("/c/<path:token>")
@public
def follow(token: str):
    try:
        recipient_id, url = clicks.read_token(token)
    except clicks.BrokenLink:
        return error_response(400, "This link is broken: it was changed or cut short after the email was sent. "
                                   "Copy the whole link from the email, or open the link's page directly.",
                              code="broken_link")
    clicks.record(recipient_id, url)
    response = redirect(url, code=302)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
