import pytest

from dashboard import create_app
from dashboard.services import accounts
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
    for line in result.output.splitlines()[1:]:
        role, email, _, password = line.split()
        assert accounts.find_by_email(email).role == role
        assert login(app.test_client(), email, password).status_code == 302


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
