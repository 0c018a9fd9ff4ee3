import pytest
from sqlalchemy import func, select

from dashboard import create_app
from dashboard.cli import DEMO_LIST, DEMO_SEGMENT
from dashboard.extensions import db
from dashboard.models import ListMember, Segment, Template, User, UserAttribute, UserList
from dashboard.services import accounts, inbox, segments
from tests.conftest import login


def test_create_account_with_password_option(app, client):
    result = app.test_cli_runner().invoke(args=["create-account", "Ops@Example.com", "--role", "support",
                                                "--password", "s3cret-enough"])
    assert result.exit_code == 0, result.output
    assert "Created ops@example.com (support)." in result.output
    assert login(client, "ops@example.com", "s3cret-enough").status_code == 302


def test_create_account_prompts_for_password(app):
    result = app.test_cli_runner().invoke(args=["create-account", "p@example.com", "--role", "admin"],
                                          input="prompted-pass\nprompted-pass\n")
    assert result.exit_code == 0, result.output
    assert accounts.find_by_email("p@example.com").role == "admin"


def test_create_account_rejects_bad_input(app):
    runner = app.test_cli_runner()
    bad_role = runner.invoke(args=["create-account", "x@example.com", "--role", "owner", "--password", "longenough"])
    assert bad_role.exit_code != 0 and "owner" in bad_role.output
    short = runner.invoke(args=["create-account", "x@example.com", "--role", "admin", "--password", "short"])
    assert short.exit_code != 0 and "at least 8 characters" in short.output
    assert accounts.find_by_email("x@example.com") is None


def test_create_api_key_prints_key_alone_on_last_line(app, client, make_account):
    owner = make_account("marketer")
    result = app.test_cli_runner().invoke(args=["create-api-key", owner.email])
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    assert key.startswith("hrld_") and " " not in key
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {key}"})
    assert response.get_json()["account"]["email"] == owner.email


def test_create_api_key_unknown_email(app):
    result = app.test_cli_runner().invoke(args=["create-api-key", "ghost@example.com"])
    assert result.exit_code != 0
    assert "No account with email ghost@example.com" in result.output


def test_seed_demo_creates_three_roles_that_can_sign_in(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    again = runner.invoke(args=["seed-demo"])  # idempotent
    assert again.exit_code == 0, again.output
    for line in [line for line in result.output.splitlines() if "password:" in line]:
        role, email, _, password = line.split()
        assert accounts.find_by_email(email).role == role
        assert login(app.test_client(), email, password).status_code == 302


def test_seed_demo_fills_the_audiences_once(app, client):
    """`make run` shows Audiences at once: 200 typed directory users, a saved segment and a list;
    running it again neither fails nor duplicates, and keeps a user's later edit."""
    runner = app.test_cli_runner()
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    assert "Demo audiences: 200 directory users (200 new)" in result.output
    types = dict(db.session.execute(select(UserAttribute.name, UserAttribute.type)).all())
    assert {k: types.get(k) for k in ("plan", "country", "signup_date", "vip")} == {
        "plan": "string", "country": "string", "signup_date": "date", "vip": "boolean"}
    assert db.session.scalar(select(func.count()).select_from(User)) == 200
    segment = db.session.scalars(select(Segment).where(Segment.name == DEMO_SEGMENT)).one()
    matched = segments.count(segment.definition)
    assert 0 < matched < 200  # a segment that picks some users, not none or all
    user_list = db.session.scalars(select(UserList).where(UserList.name == DEMO_LIST)).one()
    assert user_list.size == 25 == db.session.scalar(
        select(func.count()).select_from(ListMember).where(ListMember.list_id == user_list.id))

    db.session.execute(User.__table__.update().where(User.user_id == "demo-001")
                       .values(attributes={"plan": "edited", "country": "DE"}))
    db.session.commit()
    again = runner.invoke(args=["seed-demo"])
    assert again.exit_code == 0, again.output
    assert "Demo audiences: 200 directory users (0 new)" in again.output
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(User)) == 200
    assert db.session.scalar(select(func.count()).select_from(Segment)) == 1
    assert db.session.scalar(select(func.count()).select_from(UserList)) == 1
    assert db.session.get(UserList, user_list.id).size == 25
    assert db.session.get(User, "demo-001").attributes["plan"] == "edited"

    login(client, "marketer@herald.test", "herald-marketer")
    page = client.get("/audiences/segments").get_data(as_text=True)
    assert DEMO_SEGMENT in page
    assert DEMO_LIST in client.get("/audiences/lists").get_data(as_text=True)


def test_seed_demo_allows_the_inbox_demo_origins_and_seeds_its_template(app, client):
    """`make run`'s demo host (another port) may embed the inbox, and a newcomer has a template to send it."""
    runner = app.test_cli_runner()
    args = ["seed-demo", "--inbox-origin", "http://127.0.0.1:5001", "--inbox-origin", "http://LOCALHOST:5001/"]
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    assert "inbox origins allowed: http://127.0.0.1:5001, http://localhost:5001" in result.output
    again = runner.invoke(args=[*args[:3], "--inbox-origin", "http://127.0.0.1:5002"])  # a later run, another port
    assert again.exit_code == 0, again.output
    assert inbox.allowed_origins() == ["http://127.0.0.1:5001", "http://localhost:5001", "http://127.0.0.1:5002"]
    template = db.session.scalars(select(Template).where(Template.template_id == "inbox-demo")).one()
    assert template.status == "approved"
    allowed = client.get("/inbox/v1/unread-count", headers={"Origin": "http://localhost:5001"})
    refused = client.get("/inbox/v1/unread-count", headers={"Origin": "http://localhost:5003"})
    assert allowed.headers.get("Access-Control-Allow-Origin") == "http://localhost:5001"
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "origin_not_allowed"


def test_seed_demo_refuses_in_production(database_url, redis_url, monkeypatch):
    monkeypatch.setenv("HERALD_ENV", "production")
    prod = create_app({"SECRET_KEY": "x" * 32, "DATABASE_URL": database_url, "REDIS_URL": redis_url})
    with prod.app_context():
        result = prod.test_cli_runner().invoke(args=["seed-demo"])
        assert result.exit_code != 0
        assert "development" in result.output
        assert accounts.find_by_email("admin@herald.test") is None


@pytest.mark.parametrize("command", ["create-account", "create-api-key", "seed-demo"])
def test_commands_have_help(app, command):
    result = app.test_cli_runner().invoke(args=[command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output
