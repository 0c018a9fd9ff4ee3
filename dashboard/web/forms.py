"""WTForms for the dashboard; Flask-WTF adds the CSRF token to each."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Length

from dashboard.models import Role

ROLE_CHOICES = [SelectChoice(Role.MARKETER.value, "Marketer"), SelectChoice(Role.SUPPORT.value, "Support"),
                SelectChoice(Role.ADMIN.value, "Admin")]


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired("Enter your email.")])
    password = PasswordField("Password", validators=[DataRequired("Enter your password.")])


class AccountForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired("Enter an email."), Length(max=254)])
    role = SelectField("Role", choices=ROLE_CHOICES)
    password = PasswordField("Initial password", validators=[DataRequired("Enter a password.")])


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=ROLE_CHOICES)


class ConfirmForm(FlaskForm):
    """A form with only the CSRF token, for buttons that change state."""


class ApiKeyForm(FlaskForm):
    name = StringField("Label", validators=[Length(max=100)])
    account_id = SelectField("Owner", coerce=int)
