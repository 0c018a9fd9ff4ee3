"""Flask commands: create-account, create-api-key, seed-demo."""

from __future__ import annotations

import click
from flask import Flask, current_app

from dashboard.errors import ValidationError
from dashboard.extensions import db
from dashboard.models import Role
from dashboard.services import accounts
from dashboard.services.actor import Actor

DEMO_ACCOUNTS = (
    ("admin@herald.test", Role.ADMIN, "herald-admin"),
    ("marketer@herald.test", Role.MARKETER, "herald-marketer"),
    ("support@herald.test", Role.SUPPORT, "herald-support"),
)

CLI_ACTOR = Actor.system("command line")


def register_cli(app: Flask) -> None:
    @app.cli.command("create-account")
    @click.argument("email")
    @click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
    @click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
                  help="Prompted for when omitted.")
    def create_account(email: str, role: str, password: str):
        """Create a dashboard account."""
        try:
            account = accounts.create_account(email, role, password, CLI_ACTOR)
        except ValidationError as err:
            raise click.ClickException(err.message) from None
        click.echo(f"Created {account.email} ({account.role}).")

    @app.cli.command("create-api-key")
    @click.argument("email")
    @click.option("--name", default="", help="A label to recognise the key by.")
    def create_api_key(email: str, name: str):
        """Create an API key for an account; the key is printed once, on the last line."""
        account = accounts.find_by_email(email)
        if account is None:
            raise click.ClickException(f"No account with email {email}.")
        try:
            key, plain = accounts.create_api_key(account, name, CLI_ACTOR)
        except ValidationError as err:
            raise click.ClickException(err.message) from None
        click.echo(f"API key {key.prefix} for {account.email} ({account.role}). Store it now; it is not shown again:")
        click.echo(plain)

    @app.cli.command("seed-demo")
    @click.option("--force", is_flag=True, help="Allow outside development (never in real production).")
    def seed_demo(force: bool):
        """Create demo admin/marketer/support accounts with known passwords (development only)."""
        if current_app.config["HERALD_ENV"] == "production" and not force:
            raise click.ClickException("seed-demo creates accounts with known passwords; "
                                       "it runs only with HERALD_ENV=development (or --force).")
        for email, role, password in DEMO_ACCOUNTS:
            account = accounts.find_by_email(email)
            if account is None:
                accounts.create_account(email, role, password, CLI_ACTOR)
            else:
                accounts.set_password(account, password)
                account.role, account.active = role.value, True
                db.session.commit()
        click.echo("Demo accounts (development only):")
        for email, role, password in DEMO_ACCOUNTS:
            click.echo(f"  {role.value:<9} {email:<24} password: {password}")
