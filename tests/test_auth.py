from dashboard.extensions import db
from dashboard.models import Account
from tests.conftest import PASSWORD, csrf_from, login


def test_login_page_renders_with_csrf_token(client):
    response = client.get("/login")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Sign in" in html
    assert csrf_from(html)


def test_anonymous_is_sent_to_login(client):
    response = client.get("/admin/accounts")
    assert response.status_code == 302
    assert "/login?next=" in response.headers["Location"]


def test_correct_password_signs_in_and_shows_dashboard(client, make_account):
    account = make_account("marketer")
    response = login(client, account.email)
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert account.email in page
    assert "Welcome to Herald" in page
    db.session.expire_all()
    assert db.session.get(Account, account.id).last_login_at is not None


def test_email_is_case_insensitive(client, make_account):
    account = make_account("marketer", email="Mixed.Case@Example.com")
    assert account.email == "mixed.case@example.com"
    assert login(client, "MIXED.case@example.COM").status_code == 302


def test_wrong_password_shows_form_error(client, make_account):
    account = make_account()
    response = login(client, account.email, "not the password")
    assert response.status_code == 401
    assert "Email or password is incorrect." in response.get_data(as_text=True)
    assert client.get("/").status_code == 302  # still signed out


def test_unknown_account_gets_the_same_error(client):
    response = login(client, "nobody@example.com", "whatever1")
    assert response.status_code == 401
    assert "Email or password is incorrect." in response.get_data(as_text=True)


def test_empty_form_lists_field_errors(client):
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"csrf_token": token})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Enter your email." in html and "Enter your password." in html


def test_missing_csrf_token_is_rejected_with_clear_message(client, make_account):
    account = make_account()
    client.get("/login")
    response = client.post("/login", data={"email": account.email, "password": PASSWORD})
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_deactivated_account_cannot_sign_in(client, make_account):
    account = make_account()
    account.active = False
    db.session.commit()
    assert login(client, account.email).status_code == 401


def test_login_attempts_are_rate_limited(client, app, make_account):
    account = make_account()
    limit = app.config["LOGIN_MAX_FAILURES"]
    for _ in range(limit):
        assert login(client, account.email, "wrong-password").status_code == 401
    blocked = login(client, account.email)  # even the right password is refused now
    assert blocked.status_code == 429
    assert "Too many failed sign-in attempts" in blocked.get_data(as_text=True)


def test_successful_login_resets_failure_count(client, app, make_account):
    account = make_account()
    for _ in range(app.config["LOGIN_MAX_FAILURES"] - 1):
        login(client, account.email, "wrong-password")
    assert login(client, account.email).status_code == 302
    client.post("/logout", data={"csrf_token": csrf_from(client.get("/").get_data(as_text=True))})
    for _ in range(app.config["LOGIN_MAX_FAILURES"] - 1):
        assert login(client, account.email, "wrong-password").status_code == 401
    assert login(client, account.email).status_code == 302


def test_logout_needs_post_with_csrf(client, logged_in):
    logged_in("support")
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400
    token = csrf_from(client.get("/").get_data(as_text=True))
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 302
    assert client.get("/").status_code == 302


def test_next_parameter_cannot_redirect_off_site(client, make_account):
    account = make_account()
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login?next=//evil.example/x",
                           data={"email": account.email, "password": PASSWORD, "csrf_token": token})
    assert response.headers["Location"] == "/"


def test_next_parameter_returns_to_requested_page(client, make_account):
    account = make_account("admin")
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login?next=/admin/accounts",
                           data={"email": account.email, "password": PASSWORD, "csrf_token": token})
    assert response.headers["Location"] == "/admin/accounts"


def test_passwords_are_stored_with_a_slow_kdf(make_account):
    account = make_account()
    assert account.password_hash.startswith(("scrypt:", "pbkdf2:"))
    assert PASSWORD not in account.password_hash
