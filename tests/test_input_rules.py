"""One rule for text input at every boundary (API bodies, query strings, path segments,
dashboard forms), bounded ids, cursors and JSON bodies, races on unique keys, and the small
contract points (scheduledAt, tags, userId shape, Allow on 405). Each case checks what the
caller sees and that nothing was written."""

from __future__ import annotations

import base64
import json
import threading

import pytest
from sqlalchemy import func, select

from dashboard.extensions import QUEUE_NAMES, db, get_queue
from dashboard.inputs import json_problem, text_problem
from dashboard.models import AuditEvent, Campaign, Recipient, Template, TemplateVersion, User
from dashboard.services import recipients, templates
from dashboard.services.actor import Actor
from tests.conftest import csrf_from
from tests.test_api_campaigns import make_template

SYSTEM = Actor.system("test")
CONTROL = "contains a control character (U+0000)"


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.fixture
def draft(api):
    make_template()
    response = api("POST", "/campaigns", {"name": "Spring", "templateId": "promo", "variables": {"offer": "10%"}})
    assert response.status_code == 201
    return response.get_json()["id"]


def error_of(response, status: int = 400) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()["error"]


def assert_names(response, field: str, fragment: str = CONTROL) -> None:
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert error["message"].startswith(f"{field}: ") and fragment in error["message"]
    assert error["details"] == [{"field": field, "message": error["message"][len(field) + 2:].rstrip(".")}]


# --- the rule itself ---------------------------------------------------------------------

@pytest.mark.parametrize("char", [chr(c) for c in range(32) if c not in (9, 10, 13)] + ["\ud800", "\udfff"])
def test_every_c0_control_but_tab_and_line_breaks_is_refused(char):
    assert text_problem(f"a{char}b") is not None


@pytest.mark.parametrize("text", ["tab\there", "line\nbreak", "crlf\r\n", "émoji 🎉", "\x7f", "\u2028", ""])
def test_ordinary_text_passes(text):
    assert text_problem(text) is None


def test_json_problem_names_the_path_and_bounds_depth():
    assert json_problem({"users": [{"userId": "u1"}, {"name": "a\x0bb"}]}) == \
        ("users[1].name", "contains a control character (U+000B); only tab and line breaks are allowed")
    assert json_problem({"variables": {"k\x00": 1}})[0] == "variables"
    assert json_problem([[[]]], max_depth=3) is None
    assert json_problem([[[[]]]], max_depth=3) == ("[0][0][0]", "is nested more than 3 levels deep")


# --- API bodies ----------------------------------------------------------------------------

def test_template_create_and_edit_refuse_control_characters(api):
    body = {"name": "Spring\x00Sale", "channels": {"in_app": {"title": "t", "body": "b"}}}
    assert_names(api("POST", "/templates", body), "name")
    body = {"name": "Spring", "channels": {"in_app": {"title": "t\x0bx", "body": "b"}}}
    assert_names(api("POST", "/templates", body), "channels.in_app.title", "(U+000B)")
    assert count(Template) == 0
    ok = api("POST", "/templates", {"name": "Spring", "channels": {"in_app": {"title": "t", "body": "a\tb\r\nc"}}})
    assert ok.status_code == 201 and ok.get_json()["channels"]["in_app"]["body"] == "a\tb\r\nc"
    assert_names(api("PATCH", "/templates/spring", {"name": "x\x1f"}), "name", "(U+001F)")
    assert db.session.scalar(select(TemplateVersion.name)) == "Spring"


def test_campaign_and_recipient_bodies_refuse_control_characters(api, draft):
    assert_names(api("POST", "/campaigns", {"name": "a\x00", "templateId": "promo"}), "name")
    assert_names(api("PATCH", f"/campaigns/{draft}", {"name": "a\x00"}), "name")
    assert_names(api("POST", f"/campaigns/{draft}/recipients", {"userIds": ["u1"], "userVariables": {
        "u1": {"offer": "5%\x00"}}}), "userVariables.u1.offer")
    assert_names(api("POST", f"/campaigns/{draft}/recipients", {"userIds": ["u1\x00"]}), "userIds[0]")
    assert_names(api("POST", f"/campaigns/{draft}/send", {"scheduledAt": "2030-01-01T00:00:00Z\x00"}),
                 "scheduledAt")
    assert count(Campaign) == 1 and count(Recipient) == 0
    campaign = db.session.get(Campaign, draft)
    assert (campaign.name, campaign.status) == ("Spring", "draft")


def test_users_and_one_call_bodies_refuse_control_characters(api):
    make_template()
    assert_names(api("POST", "/users", {"users": [{"userId": "u1"}, {"userId": "u2", "name": "A\x00"}]}),
                 "users[1].name")
    assert_names(api("POST", "/users", [{"userId": "u1", "email": "a\x00@x.test"}]), "[0].email")
    assert count(User) == 0
    assert_names(api("POST", "/notifications", {"templateId": "promo", "targets": ["u1"],
                                                "variables": {"offer": "\x00"}}), "variables.offer")
    assert count(Campaign) == 0


def test_keys_and_unpaired_surrogates_are_refused_too(api):
    response = api("POST", "/templates", None, data='{"na\\u0000me": "x"}', content_type="application/json")
    error = error_of(response)
    assert error["details"][0]["field"] == "body" and "has a key that contains a control character" in error["message"]
    response = api("POST", "/templates", None, data='{"name": "a\\ud800"}', content_type="application/json")
    assert_names(response, "name", "is not valid Unicode text (an unpaired surrogate, U+D800)")
    assert count(Template) == 0


# --- query strings and path segments (reads included) --------------------------------------

@pytest.mark.parametrize("path,field", [
    ("/templates?q=a%00", "q"),
    ("/campaigns?q=a%00", "q"),
    ("/campaigns?status=draft%00", "status"),
    ("/templates/a%00b", "templateId"),
    ("/users/a%00b", "userId"),
    ("/users/a%00b/notifications", "userId"),
    ("/users/u1/notifications?cursor=%01", "cursor"),
])
def test_reads_refuse_control_characters_in_query_and_path(api, path, field):
    assert_names(api("GET", path), field, "contains a control character")


def test_writes_refuse_control_characters_in_path(api, draft):
    assert_names(api("GET", f"/campaigns/{draft}/recipients?userId=u%00"), "userId")
    assert_names(api("POST", "/users/a%00b/notifications/1/read"), "userId")
    assert_names(api("POST", "/templates/a%00b/approve"), "templateId")
    error = error_of(api("GET", "/campaigns?x%00=1"))
    assert error["details"][0]["field"] == "query"


def test_path_user_id_must_have_the_userid_shape(api):
    too_long = "a" * 129
    for path in (f"/users/{too_long}", f"/users/{too_long}/notifications"):
        error = error_of(api("GET", path))
        assert error["details"][0]["field"] == "userId" and "is not a valid userId" in error["message"]
    assert error_of(api("POST", f"/users/{too_long}/notifications/1/read"))["details"][0]["field"] == "userId"
    ok = api("GET", f"/users/{'a' * 128}/notifications")
    assert ok.status_code == 200 and ok.get_json()["items"] == []


# --- ids, cursors, JSON size and depth -----------------------------------------------------

@pytest.mark.parametrize("method,path", [
    ("GET", "/campaigns/99999999999"), ("PATCH", "/campaigns/99999999999"), ("DELETE", "/campaigns/2147483648"),
    ("GET", "/campaigns/99999999999/recipients"), ("POST", "/campaigns/99999999999/send"),
    ("GET", "/templates/promo/versions/99999999999"),
    ("POST", "/users/u1/notifications/9223372036854775808/read"),
])
def test_ids_beyond_their_column_are_404(api, method, path):
    make_template()
    assert error_of(api(method, path, {}), 404)["code"] == "not_found"


def test_ids_in_range_but_absent_are_404(api):
    assert error_of(api("GET", "/campaigns/2147483647"), 404)["code"] == "not_found"
    assert error_of(api("POST", "/users/u1/notifications/99999999999/read"), 404)["code"] == "not_found"


@pytest.mark.parametrize("raw", ['{"id":1e999}', '{"id":9223372036854775808}', '{"id":99999999999}',
                                 '{"id":-1}', '{"id":true}', '{"id":"7"}', '{"id":1.5}', '[1]', '"id"', "{}"])
def test_cursors_out_of_range_or_malformed_are_400(api, raw):
    error = error_of(api("GET", f"/campaigns?cursor={cursor(raw)}"))
    assert error["details"] == [{"field": "cursor", "message": "not a valid cursor"}]


def test_bigint_cursors_take_bigint_ids(api, draft):
    fits = cursor('{"id":99999999999}')
    assert api("GET", f"/campaigns/{draft}/recipients?cursor={fits}").status_code == 200
    big = cursor('{"id":9223372036854775808}')
    assert error_of(api("GET", f"/campaigns/{draft}/recipients?cursor={big}"))["details"][0]["field"] == "cursor"
    assert error_of(api("GET", f"/users/u1/notifications?cursor={big}"))["details"][0]["field"] == "cursor"


def test_json_nesting_is_bounded(api):
    response = api("POST", "/templates", None, data="[" * 100_000, content_type="application/json")
    assert error_of(response)["message"] == "body: is nested more than 20 levels deep."
    deep = {"name": "x", "channels": {"in_app": {"title": "t", "body": "b"}},
            "category": json.loads("[" * 25 + "]" * 25)}
    assert error_of(api("POST", "/templates", deep))["details"][0]["field"].startswith("category")
    assert count(Template) == 0


def test_json_body_size_is_bounded(api):
    body = json.dumps({"name": "x" * (10 * 1024 * 1024)})
    error = error_of(api("POST", "/templates", None, data=body, content_type="application/json"), 413)
    assert error["code"] == "too_large" and "larger than 10 MB" in error["message"]
    assert count(Template) == 0


# --- 405 ------------------------------------------------------------------------------------

def test_method_not_allowed_names_the_allowed_methods(api, client, logged_in):
    response = api("PUT", "/templates")
    assert response.status_code == 405 and response.get_json()["error"]["code"] == "method_not_allowed"
    assert {m.strip() for m in response.headers["Allow"].split(",")} >= {"GET", "POST"}
    response = api("DELETE", "/templates/promo")
    assert {m.strip() for m in response.headers["Allow"].split(",")} >= {"GET", "PATCH"}
    logged_in("marketer")
    page = client.put("/campaigns")
    assert page.status_code == 405 and "GET" in page.headers["Allow"]


# --- small contract points -------------------------------------------------------------------

@pytest.mark.parametrize("raw", ["", "   "])
def test_empty_scheduled_at_is_400_and_nothing_starts(api, draft, raw):
    recipients.add_manual(draft, ["u1"], None, SYSTEM)
    error = error_of(api("POST", f"/campaigns/{draft}/send", {"scheduledAt": raw}))
    assert error["details"] == [{"field": "scheduledAt", "message": "must be a non-empty ISO 8601 date-time"}]
    assert "leave it out (or null) to send now" in error["message"]
    db.session.expire_all()
    assert db.session.get(Campaign, draft).status == "draft"
    assert all(get_queue(name).count == 0 for name in QUEUE_NAMES)
    assert not db.session.scalars(select(AuditEvent.action).where(AuditEvent.action.in_(
        ["campaign.send", "campaign.schedule"]))).all()


def test_null_scheduled_at_sends_now(api, draft):
    recipients.add_manual(draft, ["u1"], None, SYSTEM)
    response = api("POST", f"/campaigns/{draft}/send", {"scheduledAt": None})
    assert response.status_code == 202 and response.get_json()["status"] == "sending"


@pytest.mark.parametrize("tags", [{}, "abc", [1], ["x" * 33], [""], {"a": "b"}])
def test_tags_must_be_a_list_of_short_strings(api, tags):
    body = {"name": "T", "tags": tags, "channels": {"in_app": {"title": "t", "body": "b"}}}
    error = error_of(api("POST", "/templates", body))
    assert error["details"] == [{"field": "tags", "message": "must be a list of at most 20 tags of 1-32 characters"}]
    assert count(Template) == 0


def test_tags_list_and_patch(api):
    body = {"name": "T", "tags": ["a", "b"], "channels": {"in_app": {"title": "t", "body": "b"}}}
    assert api("POST", "/templates", body).get_json()["tags"] == ["a", "b"]
    assert error_of(api("PATCH", "/templates/t", {"tags": "c"}))["details"][0]["field"] == "tags"
    assert api("PATCH", "/templates/t", {"tags": None}).get_json()["tags"] == ["a", "b"]  # null keeps them
    assert api("PATCH", "/templates/t", {"tags": []}).get_json()["tags"] == []


def test_long_names_keep_getting_free_slugs(api):
    name = "Weekly digest " + "z" * 70
    slugs = []
    for _ in range(5):
        response = api("POST", "/templates", {"name": name, "channels": {"in_app": {"title": "t", "body": "b"}}})
        assert response.status_code == 201, response.get_json()
        slugs.append(response.get_json()["templateId"])
    base = templates.slugify(name)
    assert len(base) == 60
    assert slugs == [base, f"{base[:58]}-2", f"{base[:58]}-3", f"{base[:58]}-4", f"{base[:58]}-5"]


# --- races on unique keys --------------------------------------------------------------------

def _race(app, key: str, calls: int, request) -> list:
    """Fire `calls` requests at once from their own threads and clients; return the responses."""
    barrier, out = threading.Barrier(calls), []

    def run():
        client = app.test_client()
        barrier.wait()
        response = request(client, {"Authorization": f"Bearer {key}"})
        out.append((response.status_code, response.get_json()))

    threads = [threading.Thread(target=run) for _ in range(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_concurrent_upserts_of_the_same_new_user_all_succeed(app, api_key):
    key = api_key("marketer")
    out = _race(app, key, 8, lambda c, h: c.post("/api/v1/users", json={"users": [
        {"userId": "race-user", "name": "Ann"}]}, headers=h))
    assert [status for status, _ in out] == [200] * 8, out
    assert all(body["errors"] == [] and body["created"] + body["updated"] == 1 for _, body in out)
    db.session.expire_all()
    assert db.session.scalars(select(User.user_id)).all() == ["race-user"]


def test_concurrent_creates_with_the_same_name_get_distinct_slugs(app, api_key):
    key = api_key("marketer")
    body = {"name": "Same name", "channels": {"in_app": {"title": "t", "body": "b"}}}
    out = _race(app, key, 6, lambda c, h: c.post("/api/v1/templates", json=body, headers=h))
    assert all(status in (201, 409) for status, _ in out), out
    created = sorted(b["templateId"] for status, b in out if status == 201)
    assert len(created) == len(set(created)) >= 1
    db.session.expire_all()
    assert sorted(db.session.scalars(select(Template.template_id)).all()) == created


# --- the dashboard ---------------------------------------------------------------------------

def _token(client, path: str) -> str:
    return csrf_from(client.get(path).get_data(as_text=True))


@pytest.mark.parametrize("path,field", [
    ("/support?userId=a%00b", "userId"), ("/campaigns?q=%00", "q"), ("/templates?q=%0b", "q"),
    ("/users?q=%00", "q"), ("/users/a%00b", "userId"), ("/templates/a%00b", "templateId"),
])
def test_dashboard_query_and_path_refuse_control_characters(client, logged_in, path, field):
    logged_in("support")
    response = client.get(path)
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and f"{field}: contains a control character" in html


def test_dashboard_ids_beyond_their_column_are_404(client, logged_in):
    logged_in("admin")
    for path in ("/campaigns/99999999999", "/campaigns/99999999999/_status", "/campaigns/99999999999/edit"):
        assert client.get(path).status_code == 404
    assert client.get("/audit?account=99999999999&campaign=99999999999").status_code == 200
    infinite = cursor('{"id":1e999}')
    assert client.get(f"/campaigns?cursor={infinite}").status_code == 400


def test_template_form_shows_the_error_next_to_the_field(client, logged_in):
    logged_in("marketer")
    response = client.post("/templates/new", data={
        "csrf_token": _token(client, "/templates/new"), "name": "Spring\x00", "in_app_enabled": "y",
        "in_app_title": "Hi", "in_app_body": "x\x0by"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert html.count("This contains a control character") == 2
    assert "(U+0000)" in html and "(U+000B)" in html
    assert count(Template) == 0


def test_campaign_form_and_defaults_refuse_control_characters(client, logged_in):
    make_template()
    logged_in("marketer")
    base = {"template_id": "promo", "channel": "in_app", "delivery_mode": "batch", "failure_threshold": "50"}
    response = client.post("/campaigns/new", data={**base, "csrf_token": _token(client, "/campaigns/new"),
                                                   "name": "Promo\x07", "var-offer": "5%"})
    assert response.status_code == 400
    assert "This contains a control character (U+0007)" in response.get_data(as_text=True)
    response = client.post("/campaigns/new", data={**base, "csrf_token": _token(client, "/campaigns/new"),
                                                   "name": "Promo", "var-offer": "5%\x00"})
    assert response.status_code == 400
    assert "offer contains a control character (U+0000)" in response.get_data(as_text=True)
    assert count(Campaign) == 0


def test_login_form_refuses_control_characters_without_a_lookup(client, make_account):
    response = client.post("/login", data={"csrf_token": _token(client, "/login"), "email": "a\x00@x.test",
                                           "password": "whatever"})
    assert response.status_code == 400 and "This contains a control character" in response.get_data(as_text=True)
