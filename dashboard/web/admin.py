"""Admin pages: accounts and roles, API keys, workspace settings (four-eyes)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from sqlalchemy import select
from wtforms import BooleanField, IntegerField, SelectChoice
from wtforms.validators import InputRequired, NumberRange, StopValidation

from dashboard.access import ADMINS, current_actor, roles
from dashboard.errors import ValidationError
from dashboard.extensions import db
from dashboard.models import Account, ApiKey
from dashboard.services import accounts, workspace
from dashboard.web.forms import AccountForm, ApiKeyForm, ConfirmForm, HeraldForm, RoleForm

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


def _workspace_page(form: WorkspaceForm, status: int = 200):
    return render_template("admin/workspace.html", form=form, current=workspace.four_eyes()), status


@bp.get("/workspace")
@roles(*ADMINS)
def workspace_settings():
    setting = workspace.four_eyes()
    return _workspace_page(WorkspaceForm(data={"enabled": setting.enabled, "threshold": setting.threshold}))


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
