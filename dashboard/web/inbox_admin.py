"""Admin → In-app inbox: the origins whose pages may embed `<herald-inbox>`, the user-token lifetime,
"Revoke all user tokens", and the embed snippet. Routes on the admin blueprint; the rules are
dashboard.services.inbox's (the same as PUT /api/v1/settings/inbox)."""

from __future__ import annotations

from datetime import datetime

from flask import current_app, flash, redirect, render_template, url_for
from wtforms import TextAreaField

from dashboard.access import ADMINS, current_actor, roles
from dashboard.errors import ValidationError
from dashboard.services import inbox
from dashboard.web.admin import bp
from dashboard.web.forms import ConfirmForm, HeraldForm


class InboxOriginsForm(HeraldForm):
    origins = TextAreaField("Allowed origins", render_kw={
        "rows": 5, "spellcheck": "false", "autocapitalize": "off", "autocomplete": "off",
        "placeholder": "https://app.example.com"})


def _lines(text: str) -> list[tuple[int, str]]:
    """(line number, text) of the non-empty lines: errors name the line an admin typed."""
    return [(number, line) for number, line in enumerate((text or "").splitlines(), 1) if line.strip()]


def _lifetime(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


def _page(form: InboxOriginsForm | None = None, status: int = 200):
    current = inbox.public_settings()
    if form is None:
        form = InboxOriginsForm(formdata=None, data={"origins": "\n".join(current["allowedOrigins"])})
    rotated = datetime.fromisoformat(current["rotatedAt"]) if current["rotatedAt"] else None
    return render_template("admin/inbox.html", form=form, current=current, confirm=ConfirmForm(),
                           herald=current_app.config["HERALD_PUBLIC_URL"], rotated_at=rotated,
                           lifetime=_lifetime(current["tokenTtlSeconds"])), status


@bp.get("/inbox")
@roles(*ADMINS)
def inbox_settings():
    return _page()


@bp.post("/inbox")
@roles(*ADMINS)
def inbox_origins_save():
    form = InboxOriginsForm()
    if form.validate_on_submit():
        lines = _lines(form.origins.data)
        try:
            saved = inbox.set_settings(allowed_origins=[line for _, line in lines], actor=current_actor())
        except ValidationError as err:
            problems = []
            for detail in err.details:
                field = detail.get("field", "")
                if field.startswith("allowedOrigins["):
                    number = lines[int(field[len("allowedOrigins["):].rstrip("]"))][0]
                    problems.append(f"Line {number}: {detail['message']}.")
                else:
                    problems.append(f"{err.message.removesuffix('.')}; nothing was changed.")
            form.origins.errors = [*form.origins.errors, *problems]
        else:
            origins = saved["allowedOrigins"]
            flash(f"Allowed origins saved: {', '.join(origins)}. Pages there may show the inbox." if origins else
                  "No other origin may call the inbox now; only Herald's own pages.", "success")
            return redirect(url_for("admin.inbox_settings"))
    return _page(form, 400)


@bp.post("/inbox/rotate")
@roles(*ADMINS)
def inbox_rotate():
    if ConfirmForm().validate_on_submit():
        inbox.set_settings(rotate=True, actor=current_actor())
        flash("Every user token is revoked: open inboxes stop updating and ask your server for a new token.",
              "success")
    return redirect(url_for("admin.inbox_settings") + "#tokens")
