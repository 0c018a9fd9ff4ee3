"""Admin: channel settings (secrets write-only; a generated signing secret is shown once, on the
answer that made it) and a "send test" for each channel."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from dashboard.access import ADMINS, current_actor, roles
from dashboard.channels import ChannelUnavailable, Message
from dashboard.errors import ValidationError
from dashboard.recipients_csv.validation import EMAIL_RE, user_id_problem
from dashboard.services import channel_settings
from dashboard.web.forms import ConfirmForm

bp = Blueprint("channels", __name__, url_prefix="/admin/channels")


def _page(new_secret: str | None = None):
    configs = [channel_settings.get(k) for k in channel_settings.TYPES]
    body = render_template("admin/channels.html", configs=[channel_settings.public(c) for c in configs],
                           plaintext={c.type: channel_settings.plaintext_secrets(c) for c in configs},
                           new_secret=new_secret, allow_private=channel_settings.allow_private(), confirm=ConfirmForm())
    if new_secret is None:
        return body
    return body, 200, {"Cache-Control": "no-store"}  # the secret is in this answer only


@bp.get("")
@roles(*ADMINS)
def index():
    return _page()


@bp.post("/<kind>")
@roles(*ADMINS)
def update(kind: str):
    form = request.form
    settings = {key: form.get(key, "").strip() for key in (*channel_settings.PLAIN.get(kind, ()),
                                                           *channel_settings.SECRET.get(kind, ())) if key in form}
    if "timeoutSeconds" in settings:
        try:
            settings["timeoutSeconds"] = float(settings["timeoutSeconds"]) if settings["timeoutSeconds"] else None
        except ValueError:
            settings["timeoutSeconds"] = -1
    try:
        rate = float(form.get("rateLimit", "0") or 0)
    except ValueError:
        rate = -1
    try:
        saved = channel_settings.update(kind, {"enabled": form.get("enabled") == "y", "rateLimit": rate,
                                               "settings": settings}, current_actor())
    except ValidationError as err:
        flash("Not saved: " + "; ".join(f"{d['field'].replace('settings.', '')} {d['message']}"
                                         for d in err.details), "error")
        return redirect(url_for("channels.index") + f"#{kind}")
    flash(f"{kind.replace('_', '-')} settings saved.", "success")
    if saved.new_secret:
        return _page(saved.new_secret)
    return redirect(url_for("channels.index") + f"#{kind}")


@bp.post("/<kind>/secret")
@roles(*ADMINS)
def rotate_secret(kind: str):
    try:
        saved = channel_settings.rotate_secret(kind, current_actor())
    except ValidationError as err:
        flash(err.message, "error")
        return redirect(url_for("channels.index") + f"#{kind}")
    flash("New signing secret generated; the previous one no longer verifies.", "success")
    return _page(saved.new_secret)


@bp.post("/<kind>/test")
@roles(*ADMINS)
def send_test(kind: str):
    """One message through the saved settings: an email to the address typed in, or a webhook
    for the userId typed in, posted to the configured URL; the page says what happened."""
    target = (request.form.get("target") or "").strip()
    try:
        if kind not in ("email", "webhook"):
            raise ValidationError("Test sends are for the email and webhook channels.")
        if kind == "email" and not EMAIL_RE.match(target):
            raise ValidationError("Type the email address to send the test to (e.g. you@example.com).")
        if kind == "webhook" and (problem := user_id_problem(target) if target else "type a userId"):
            raise ValidationError(f"the userId: {problem}.")
        if missing := channel_settings.missing(channel_settings.get(kind)):
            raise ValidationError(f"the {kind} channel is not configured yet (missing: {', '.join(missing)}).")
        channel = channel_settings.build(kind)
        content = ({"subject": "[Test] Herald test message", "text": "This is a test from Herald's channel settings."}
                   if kind == "email" else {"title": "[Test] Herald test", "body": "This is a test from Herald."})
        message = Message(recipient_id=0, campaign_id=0, user_id=target if kind == "webhook" else "herald-test",
                          email=target if kind == "email" else None, content=content, test=True)
        try:
            result = channel.send_batch([message])[0]
        finally:
            channel.close()
    except (ValidationError, ChannelUnavailable) as err:
        flash(f"Test not sent: {getattr(err, 'message', str(err))}", "error")
    else:
        where = target if kind == "email" else f"{channel_settings.get(kind).settings.get('url')} (userId {target})"
        if result.outcome == "sent":
            flash(f"Test delivered to {where}.", "success")
        else:
            flash(f"Test to {where} failed ({result.outcome}): {result.error}", "error")
    return redirect(url_for("channels.index") + f"#{kind}")
