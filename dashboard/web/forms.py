"""WTForms for the dashboard; Flask-WTF adds the CSRF token to each."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, Form, PasswordField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Length, StopValidation

from dashboard.inputs import text_problem
from dashboard.models import Role


def text_rule(form, field) -> None:
    """dashboard.inputs' text rule as a validator: the error shows next to the field (400)."""
    if isinstance(field.data, str) and (problem := text_problem(field.data)):
        raise StopValidation(f"This {problem}.")


class TextRuleMeta:
    """Every text field of a form gets text_rule first, so no form can forget it."""

    def bind_field(self, form, unbound_field, options):
        if issubclass(unbound_field.field_class, StringField):
            validators = [text_rule, *(unbound_field.kwargs.get("validators") or ())]
            options = {**options, "validators": validators}
        return super().bind_field(form, unbound_field, options)


class HeraldForm(FlaskForm):
    """The base of every dashboard form (Flask-WTF adds the CSRF token)."""

    class Meta(TextRuleMeta):
        pass


class SubForm(Form):
    """A form nested in a HeraldForm (FormField rows): the same text rule, no token of its own."""

    class Meta(TextRuleMeta):
        pass

ROLE_CHOICES = [SelectChoice(Role.MARKETER.value, "Marketer"), SelectChoice(Role.SUPPORT.value, "Support"),
                SelectChoice(Role.ADMIN.value, "Admin")]


class LoginForm(HeraldForm):
    email = EmailField("Email", validators=[DataRequired("Enter your email.")])
    password = PasswordField("Password", validators=[DataRequired("Enter your password.")])


class AccountForm(HeraldForm):
    email = EmailField("Email", validators=[DataRequired("Enter an email."), Length(max=254)])
    role = SelectField("Role", choices=ROLE_CHOICES)
    password = PasswordField("Initial password", validators=[DataRequired("Enter a password.")])


class RoleForm(HeraldForm):
    role = SelectField("Role", choices=ROLE_CHOICES)


class ConfirmForm(HeraldForm):
    """A form with only the CSRF token, for buttons that change state."""


class ApiKeyForm(HeraldForm):
    name = StringField("Label", validators=[Length(max=100)])
    account_id = SelectField("Owner", coerce=int)
