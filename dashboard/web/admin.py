"""Admin pages: accounts and roles, API keys, workspace settings (four-eyes, quiet hours, frequency caps)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from sqlalchemy import select
from wtforms import BooleanField, FormField, IntegerField, SelectChoice, SelectField, StringField
from wtforms.validators import InputRequired, NumberRange, StopValidation

from dashboard.access import ADMINS, current_actor, roles
from dashboard.errors import ValidationError
from dashboard.extensions import db
from dashboard.models import Account, ApiKey
from dashboard.services import accounts, workspace
from dashboard.web.campaign_forms import number
from dashboard.web.forms import AccountForm, ApiKeyForm, ConfirmForm, HeraldForm, RoleForm, SubForm

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _apply_field_errors(form, err: ValidationError) -> None:
    placed = False
    for detail in err.details:
        field = getattr(form, detail.get("field", ""), None)
        if field is not None:
            field.errors = [*field.errors, detail["message"]]
            placed = True
    if not placed:
        form.form_errors.append(err.message)


def _accounts_page(form: AccountForm, status: int = 200):
    rows = db.session.scalars(select(Account).order_by(Account.email)).all()
    return render_template("admin/accounts.html", accounts=rows, form=form,
                           role_form=RoleForm(), confirm=ConfirmForm()), status


@bp.get("/accounts")
@roles(*ADMINS)
def account_list():
    return _accounts_page(AccountForm())


@bp.post("/accounts")
@roles(*ADMINS)
def account_create():
    form = AccountForm()
    if form.validate_on_submit():
        try:
            account = accounts.create_account(form.email.data, form.role.data, form.password.data, current_actor())
        except ValidationError as err:
            _apply_field_errors(form, err)
        else:
            flash(f"Account {account.email} created as {account.role}.", "success")
            return redirect(url_for("admin.account_list"))
    return _accounts_page(form, 400)


@bp.post("/accounts/<int:account_id>/role")
@roles(*ADMINS)
def account_role(account_id: int):
    form = RoleForm()
    if form.validate_on_submit():
        try:
            account = accounts.change_role(account_id, form.role.data, current_actor())
            flash(f"{account.email} is now {account.role}.", "success")
        except ValidationError as err:
            flash(err.message, "error")
    return redirect(url_for("admin.account_list"))


@bp.post("/accounts/<int:account_id>/<any(activate, deactivate):action>")
@roles(*ADMINS)
def account_active(account_id: int, action: str):
    try:
        account = accounts.set_active(account_id, action == "activate", current_actor())
        flash(f"{account.email} {'activated' if account.active else 'deactivated'}.", "success")
    except ValidationError as err:
        flash(err.message, "error")
    return redirect(url_for("admin.account_list"))


def _keys_page(form: ApiKeyForm, new_key: str | None = None, status: int = 200):
    keys = db.session.scalars(select(ApiKey).order_by(ApiKey.created_at.desc())).all()
    return render_template("admin/api_keys.html", keys=keys, form=form, new_key=new_key,
                           confirm=ConfirmForm()), status


def _key_form() -> ApiKeyForm:
    form = ApiKeyForm()
    owners = db.session.scalars(select(Account).where(Account.active).order_by(Account.email)).all()
    form.account_id.choices = [SelectChoice(a.id, f"{a.email} ({a.role})") for a in owners]
    return form


@bp.get("/api-keys")
@roles(*ADMINS)
def api_keys():
    return _keys_page(_key_form())


@bp.post("/api-keys")
@roles(*ADMINS)
def api_key_create():
    form = _key_form()
    if form.validate_on_submit():
        owner = accounts.get_account(form.account_id.data)
        try:
            _, plain = accounts.create_api_key(owner, form.name.data, current_actor())
        except ValidationError as err:
            _apply_field_errors(form, err)
            return _keys_page(form, status=400)
        flash("API key created. Copy it now: it will not be shown again.", "success")
        return _keys_page(_key_form(), new_key=plain)
    return _keys_page(form, status=400)


@bp.post("/api-keys/<int:key_id>/revoke")
@roles(*ADMINS)
def api_key_revoke(key_id: int):
    key = accounts.revoke_api_key(key_id, current_actor())
    flash(f"API key {key.prefix} revoked; requests using it now get 401.", "success")
    return redirect(url_for("admin.api_keys"))


class WholeNumberField(IntegerField):
    """An IntegerField whose unreadable input gives one plain message (not also the range's)."""

    def process_formdata(self, valuelist):
        try:
            super().process_formdata(valuelist)
        except ValueError:
            raise ValueError("Enter a whole number of recipients, e.g. 1000.") from None

    def pre_validate(self, form):
        if self.process_errors and self.raw_data and self.raw_data[0]:  # empty: InputRequired says so
            raise StopValidation()


class WorkspaceForm(HeraldForm):
    """Four-eyes: one switch and the send size above which a second person approves."""

    enabled = BooleanField("Require a second person (four-eyes)")
    threshold = WholeNumberField(
        "Sends larger than this many recipients need a second person's approval",
        validators=[InputRequired("Enter a number of recipients."),
                    NumberRange(0, workspace.MAX_THRESHOLD,
                                f"Enter a whole number from 0 to {workspace.MAX_THRESHOLD:,}.")])


class QuietHoursForm(HeraldForm):
    """Quiet hours: a daily window in each recipient's zone; judged by workspace.set_quiet_hours."""

    enabled = BooleanField("Hold messages during quiet hours")
    start = StringField("From", default="21:00", render_kw={"type": "time"})
    end = StringField("Until", default="08:00", render_kw={"type": "time"})


CAP_CHANNELS = [SelectChoice("all", "All channels"), SelectChoice("in_app", "In-app"),
                SelectChoice("email", "Email"), SelectChoice("webhook", "Webhook")]
CAP_WINDOWS = [SelectChoice("24h", "24 hours"), SelectChoice("7d", "7 days")]
CAP_ROWS = 5  # fixed rows; an empty limit is no cap


class CapRowForm(SubForm):
    channel = SelectField("Channel", choices=CAP_CHANNELS, default="all")
    limit = StringField("At most (messages per user)", render_kw={"type": "number", "min": "1", "max": "1000",
                                                                    "step": "1", "inputmode": "numeric"})
    window = SelectField("In any", choices=CAP_WINDOWS, default="24h")


class CapsForm(HeraldForm):
    """Frequency caps: CAP_ROWS fixed rows (rule_0..), judged by workspace.set_frequency_caps. Fixed
    fields rather than a FieldList, which renumbers the rows posted and reads a missing one twice."""

    @property
    def rules(self) -> list:
        return [self[f"rule_{i}"] for i in range(CAP_ROWS)]

    def filled(self) -> list[tuple[object, dict]]:
        return [(row, {"channel": row.channel.data, "limit": number(row.limit.data), "window": row.window.data})
                for row in self.rules if (row.limit.data or "").strip()]


for _i in range(CAP_ROWS):
    setattr(CapsForm, f"rule_{_i}", FormField(CapRowForm))


def _says(message: str, prefix: str = "") -> str:
    """A service message shown next to its field: "start must be…" -> "Start must be…"."""
    text = message.removeprefix(prefix).lstrip(".: ")
    return text[:1].upper() + text[1:]


def _quiet_form() -> QuietHoursForm:
    quiet = workspace.quiet_hours()
    return QuietHoursForm(prefix="quiet", formdata=None, data={
        "enabled": quiet.enabled, "start": quiet.start.strftime("%H:%M"), "end": quiet.end.strftime("%H:%M")})


def _caps_form() -> CapsForm:
    rules = [r.as_json() | {"limit": str(r.limit)} for r in workspace.frequency_caps()]
    return CapsForm(prefix="caps", formdata=None, data={f"rule_{i}": rule for i, rule in enumerate(rules)})


def _workspace_page(form: WorkspaceForm | None = None, status: int = 200, quiet: QuietHoursForm | None = None,
                    caps: CapsForm | None = None):
    if form is None:
        setting = workspace.four_eyes()
        form = WorkspaceForm(formdata=None, data={"enabled": setting.enabled, "threshold": setting.threshold})
    return render_template("admin/workspace.html", form=form, current=workspace.four_eyes(),
                           quiet=quiet or _quiet_form(), quiet_now=workspace.quiet_hours(),
                           caps=caps or _caps_form(), caps_now=workspace.frequency_caps()), status


@bp.get("/workspace")
@roles(*ADMINS)
def workspace_settings():
    return _workspace_page()


@bp.post("/workspace/quiet-hours")
@roles(*ADMINS)
def quiet_hours_save():
    form = QuietHoursForm(prefix="quiet")
    if form.validate_on_submit():
        try:
            quiet = workspace.set_quiet_hours(bool(form.enabled.data), (form.start.data or "").strip(),
                                              (form.end.data or "").strip(), current_actor())
        except ValidationError as err:
            for detail in err.details:
                field = getattr(form, detail.get("field", ""), None) or form.end
                field.errors = [*field.errors, _says(err.message)]
        else:
            hours = f"{quiet.start:%H:%M}–{quiet.end:%H:%M}"
            flash(f"Quiet hours are on: {hours} in each recipient's time zone; messages due then wait until "
                  f"{quiet.end:%H:%M}." if quiet.enabled else f"Quiet hours are off (kept: {hours}).", "success")
            return redirect(url_for("admin.workspace_settings") + "#quiet-hours")
    return _workspace_page(quiet=form, status=400)


@bp.post("/workspace/frequency-caps")
@roles(*ADMINS)
def frequency_caps_save():
    form = CapsForm(prefix="caps")
    if form.validate_on_submit():
        filled = form.filled()
        placed = False
        for row, rule in filled:  # each row judged on its own, so every bad row says so
            try:
                workspace.parse_cap_rules([rule])
            except ValidationError as err:
                name = err.details[0]["field"].removeprefix("rules[0]").lstrip(".") if err.details else ""
                field = getattr(row, name, None) or row.limit
                field.errors = [*field.errors, _says(err.message, f"rules[0].{name}" if name else "rules[0]")]
                placed = True
        if not placed:
            try:
                rules = workspace.set_frequency_caps([rule for _, rule in filled], current_actor())
            except ValidationError as err:  # a duplicate: the row it names
                index = next((int(d["field"][6:].split("]")[0]) for d in err.details
                              if d.get("field", "").startswith("rules[")), None)
                if index is not None and index < len(filled):
                    row = filled[index][0]
                    row.window.errors = [*row.window.errors, _says(err.message, f"rules[{index}]")]
                else:
                    form.form_errors.append(err.message)
            else:
                text = "; ".join(r.reason().removeprefix("frequency cap: ") for r in rules)
                flash(f"Frequency caps saved: at most {text}." if rules else
                      "Frequency caps removed: no limit on campaign messages per user.", "success")
                return redirect(url_for("admin.workspace_settings") + "#frequency-caps")
    return _workspace_page(caps=form, status=400)


@bp.post("/workspace")
@roles(*ADMINS)
def workspace_save():
    form = WorkspaceForm()
    if form.validate_on_submit():
        try:
            setting = workspace.set_four_eyes(bool(form.enabled.data), form.threshold.data, current_actor())
        except ValidationError as err:
            _apply_field_errors(form, err)
        else:
            if setting.enabled:
                flash(f"Four-eyes approval is on: templates need a second person's approval, and so do sends "
                      f"to more than {setting.threshold:,} recipients.", "success")
            else:
                flash("Four-eyes approval is off: the editor of a template may approve it, and sends start "
                      "without a second approval.", "success")
            return redirect(url_for("admin.workspace_settings"))
    return _workspace_page(form, 400)
