"""Flask commands: create-account, create-api-key, seed-demo."""

from __future__ import annotations

from datetime import date, timedelta

import click
from flask import Flask, current_app
from sqlalchemy import select

from dashboard.errors import AppError, ValidationError
from dashboard.extensions import db
from dashboard.models import Role, Segment, Template, User, UserList
from dashboard.services import accounts, inbox, lists, segments, templates, users
from dashboard.services.actor import Actor

DEMO_ACCOUNTS = (
    ("admin@herald.test", Role.ADMIN, "herald-admin"),
    ("marketer@herald.test", Role.MARKETER, "herald-marketer"),
    ("support@herald.test", Role.SUPPORT, "herald-support"),
)

CLI_ACTOR = Actor.system("command line")

# The demo directory (issue 16): enough typed attributes that Audiences shows something at once.
DEMO_USERS = 200
DEMO_PLANS = ("free", "free", "free", "pro", "pro", "team", "enterprise")
DEMO_COUNTRIES = (("DE", "Europe/Berlin"), ("FR", "Europe/Paris"), ("GB", "Europe/London"),
                  ("US", "America/New_York"), ("NL", "Europe/Amsterdam"), ("ES", "Europe/Madrid"))
DEMO_SEGMENT = "Paying customers who joined in the last 90 days"
DEMO_LIST = "Beta testers"
# The inbox demo (issue 17): an approved in-app template, so a newcomer can send to demo-001 at once.
DEMO_TEMPLATE = {
    "templateId": "inbox-demo", "name": "Inbox demo",
    "channels": {"in_app": {"title": "{{ headline }}", "body": "{{ message }}"}},
    "variableSchema": [
        {"key": "headline", "type": "string", "defaultValue": "Your weekly summary is ready"},
        {"key": "message", "type": "string",
         "defaultValue": "3 projects moved forward this week. Open Acme to see what changed."}],
}


def demo_users(today: date) -> list[dict]:
    """200 directory users demo-001 … demo-200 with plan, country, signup_date and vip."""
    entries = []
    for i in range(1, DEMO_USERS + 1):
        country, zone = DEMO_COUNTRIES[i % len(DEMO_COUNTRIES)]
        entries.append({
            "userId": f"demo-{i:03d}", "name": f"Demo user {i}", "email": f"demo-{i:03d}@example.com",
            "timezone": zone,
            "attributes": {"plan": DEMO_PLANS[(i * 5) % len(DEMO_PLANS)], "country": country,
                           "signup_date": (today - timedelta(days=(i * 37) % 365)).isoformat(),
                           "vip": i % 9 == 0},
        })
    return entries


def seed_audiences(today: date | None = None) -> dict:
    """Idempotent: users that already exist are left alone (a demo edit survives a restart); the
    segment and the list are created only when no segment/list has their name."""
    entries = demo_users(today or date.today())
    ids = [e["userId"] for e in entries]
    existing = set(db.session.scalars(select(User.user_id).where(User.user_id.in_(ids))))
    missing = [e for e in entries if e["userId"] not in existing]
    created = users.upsert(missing)["created"] if missing else 0
    if db.session.scalar(select(Segment.id).where(Segment.name == DEMO_SEGMENT)) is None:
        segments.create({"name": DEMO_SEGMENT,
                         "description": "Pro, team or enterprise plan and a signup date in the last 90 days.",
                         "definition": {"match": "all", "conditions": [
                             {"type": "attribute", "attribute": "plan", "operator": "in",
                              "value": ["pro", "team", "enterprise"]},
                             {"type": "attribute", "attribute": "signup_date", "operator": "within_last_days",
                              "value": 90}]}}, CLI_ACTOR)
    if db.session.scalar(select(UserList.id).where(UserList.name == DEMO_LIST)) is None:
        lists.create(DEMO_LIST, "Demo users who opted in to try new features early.", CLI_ACTOR,
                     user_ids=ids[:25])
    return {"created": created, "users": len(ids)}


def seed_inbox_demo(origins: tuple[str, ...]) -> list[str]:
    """The demo template (once) and the demo host's origins added to the inbox's allowed origins."""
    if db.session.scalar(select(Template.id).where(Template.template_id == DEMO_TEMPLATE["templateId"])) is None:
        templates.create(DEMO_TEMPLATE, CLI_ACTOR)
        templates.transition(DEMO_TEMPLATE["templateId"], "approve", CLI_ACTOR)
    allowed = inbox.allowed_origins()
    added = [inbox.clean_origin(o) for o in origins if inbox.clean_origin(o) not in allowed]
    if added:
        inbox.set_settings(allowed_origins=[*allowed, *added][-inbox.MAX_ORIGINS:], actor=CLI_ACTOR)
    return added


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
    @click.option("--inbox-origin", "inbox_origins", multiple=True, metavar="ORIGIN",
                  help="Allow this origin to embed the inbox (the demo host of `make run`); repeatable.")
    def seed_demo(force: bool, inbox_origins: tuple[str, ...]):
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
        try:
            seeded = seed_audiences()
        except ValidationError as err:  # e.g. a demo attribute registered with another type by hand
            db.session.rollback()
            seeded = {"problem": err.message}
        try:
            seed_inbox_demo(inbox_origins)
            inbox_note = "template “Inbox demo” (in-app)" + (
                f"; inbox origins allowed: {', '.join(inbox.allowed_origins())}" if inbox_origins else "")
        except (AppError, ValueError) as err:  # e.g. four-eyes on: the demo template stays a draft
            db.session.rollback()
            inbox_note = f"inbox demo incomplete: {getattr(err, 'message', err)}"
        click.echo("Demo accounts (development only):")
        for email, role, password in DEMO_ACCOUNTS:
            click.echo(f"  {role.value:<9} {email:<24} password: {password}")
        if "problem" in seeded:
            click.echo(f"Demo audiences skipped: {seeded['problem']}")
        else:
            click.echo(f"Demo audiences: {seeded['users']} directory users ({seeded['created']} new) with plan, "
                       f"country, signup_date and vip; segment “{DEMO_SEGMENT}”; list “{DEMO_LIST}”.")
        click.echo(f"Demo inbox: {inbox_note}.")
