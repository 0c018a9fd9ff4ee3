"""Typed user attributes: the type rules, POST /users attributes (saved, merged, removed,
refused by path), the registry and GET /attributes."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from dashboard.extensions import db
from dashboard.models import User, UserAttribute
from dashboard.services import attributes, users


@pytest.mark.parametrize(("value", "expected"), [
    (True, "boolean"), (False, "boolean"), (0, "number"), (-3, "number"), (2.5, "number"),
    ("2026-02-28", "date"), ("2026-02-30", "string"), ("2026-2-3", "string"), ("gold", "string"), ("", "string"),
    ("true", "string"), ("12", "string"),
])
def test_infer_gives_each_value_its_type(value, expected):
    assert attributes.infer(value) == expected


def test_infer_refuses_objects_and_lists():
    for value in ({"a": 1}, [1], None):
        with pytest.raises(ValueError):
            attributes.infer(value)


@pytest.mark.parametrize(("text", "type_", "expected"), [
    ("42", "number", 42), ("-7", "number", -7), ("3.25", "number", 3.25), (" -0.5 ", "number", -0.5),
    ("+10", "number", 10), ("true", "boolean", True), ("YES", "boolean", True), ("No", "boolean", False),
    ("FALSE", "boolean", False), ("2024-02-29", "date", "2024-02-29"), ("gold", "string", "gold"),
    ("42", "string", "42"),
])
def test_parse_text_reads_csv_cells(text, type_, expected):
    value = attributes.parse_text(text, type_)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(("text", "type_", "why"), [
    ("abc", "number", "is not a number"), ("1e5", "number", "is not a number"), ("1,5", "number", "is not a number"),
    ("inf", "number", "is not a number"), ("maybe", "boolean", "not true/false"), ("1", "boolean", "not true/false"),
    ("2026-02-30", "date", "is not a date"), ("2023-02-29", "date", "is not a date"),
    ("26-01-01", "date", "is not a date"), ("2026-01-01T10:00", "date", "is not a date"),
    ("x" * 1001, "string", "at most 1,000 characters"),
])
def test_parse_text_says_why_a_cell_does_not_parse(text, type_, why):
    with pytest.raises(ValueError, match=why):
        attributes.parse_text(text, type_)


def test_check_holds_values_to_their_type():
    assert attributes.check(5, "number") is None
    assert attributes.check(True, "number") == "true is not a number"
    assert attributes.check(float("inf"), "number") == "inf is not a finite number"
    assert "out of range" in attributes.check(2**60, "number")
    assert attributes.check("yes", "boolean") == '"yes" is not true or false'
    assert attributes.check("2026-13-01", "date") == '"2026-13-01" is not a date (YYYY-MM-DD, a real day)'
    assert attributes.check(3, "string") == "3 is not a string"
    assert "control character" in attributes.check("a\x01", "string")


def test_infer_column_picks_the_narrowest_type_every_cell_fits():
    assert attributes.infer_column(["yes", "no", ""]) == "boolean"
    assert attributes.infer_column(["1", "2.5", "-3"]) == "number"
    assert attributes.infer_column(["2026-01-01", "2026-02-30"]) == "string"
    assert attributes.infer_column(["2026-01-01", ""]) == "date"
    assert attributes.infer_column(["", ""]) == "boolean"


def test_names_follow_the_rule():
    assert attributes.name_problem("plan_2") is None and attributes.name_problem("_x") is None
    for bad in ("2plan", "first name", "a-b", "", "x" * 65, "plän"):
        assert "not a valid attribute name" in attributes.name_problem(bad)
    for reserved in ("userId", "name", "email", "timezone"):
        assert "directory column" in attributes.name_problem(reserved)


def _attrs(user_id):
    db.session.expire_all()
    return db.session.get(User, user_id).attributes


def test_attributes_are_saved_typed_and_registered(api):
    body = {"users": [{"userId": "u1", "attributes": {"plan": "gold", "seats": 12, "trial": False,
                                                      "signup": "2026-03-01", "score": -1.5}}]}
    answer = api("POST", "/users", body)
    assert answer.status_code == 200 and answer.get_json() == {"created": 1, "updated": 0, "errors": []}
    assert _attrs("u1") == {"plan": "gold", "seats": 12, "trial": False, "signup": "2026-03-01", "score": -1.5}
    assert attributes.types() == {"plan": "string", "seats": "number", "trial": "boolean", "signup": "date",
                                  "score": "number"}
    read = api("GET", "/users/u1").get_json()
    assert read["attributes"]["seats"] == 12 and read["attributes"]["trial"] is False


def test_upsert_merges_and_null_removes(api):
    api("POST", "/users", [{"userId": "u1", "name": "Ann", "attributes": {"plan": "gold", "seats": 3}}])
    answer = api("POST", "/users", [{"userId": "u1", "attributes": {"seats": 4, "vip": True}}]).get_json()
    assert answer == {"created": 0, "updated": 1, "errors": []}
    assert _attrs("u1") == {"plan": "gold", "seats": 4, "vip": True}
    api("POST", "/users", [{"userId": "u1", "attributes": {"plan": None}},
                           {"userId": "u2", "attributes": {"vip": None}}])
    assert _attrs("u1") == {"seats": 4, "vip": True}
    assert _attrs("u2") == {}  # removing from a new user stores nothing, not a null
    api("POST", "/users", [{"userId": "u1", "name": "Ann B"}])  # no attributes: kept
    assert _attrs("u1") == {"seats": 4, "vip": True}


def test_wrong_type_is_that_entrys_error_with_its_path(api):
    api("POST", "/users", [{"userId": "u0", "attributes": {"plan": 1}}])
    answer = api("POST", "/users", {"users": [{"userId": "u1", "attributes": {"plan": 2}},
                                              {"userId": "u2", "attributes": {"plan": "abc"}},
                                              {"userId": "u3", "attributes": {"when": "2026-01-01"}},
                                              {"userId": "u4", "attributes": {"when": "soon"}}]}).get_json()
    assert answer["created"] == 2
    assert answer["errors"] == [
        {"index": 1, "field": "users[1].attributes.plan",
         "message": 'plan is a number attribute; "abc" is not a number'},
        {"index": 3, "field": "users[3].attributes.when",
         "message": 'when is a date attribute; "soon" is not a date (YYYY-MM-DD, a real day)'}]
    assert db.session.get(User, "u2") is None and db.session.get(User, "u4") is None
    assert attributes.types()["when"] == "date"


def test_bad_names_values_and_counts_are_refused(api):
    answer = api("POST", "/users", [
        {"userId": "a", "attributes": {"email": "x@y.z"}},
        {"userId": "b", "attributes": {"first name": "Al"}},
        {"userId": "c", "attributes": {f"a{i}": i for i in range(51)}},
        {"userId": "d", "attributes": {"note": "x" * 1001}},
        {"userId": "e", "attributes": {"tags": ["a"]}},
        {"userId": "f", "attributes": {"big": 1e300 * 10}},
    ]).get_json()
    fields = {e["index"]: (e["field"], e["message"]) for e in answer["errors"]}
    assert answer["created"] == 0
    assert fields[0][0] == "users[0].attributes.email" and "directory column" in fields[0][1]
    assert fields[1][0] == "users[1].attributes.first name" and "not a valid attribute name" in fields[1][1]
    assert fields[2] == ("users[2].attributes", "at most 50 attributes per user; this entry has 51")
    assert "at most 1,000 characters" in fields[3][1]
    assert fields[4][0] == "users[4].attributes.tags"
    assert fields[5][0] == "users[5].attributes.big"
    assert db.session.scalar(select(UserAttribute).where(UserAttribute.name == "note")) is None  # nothing half-done


def test_fifty_after_merge_is_the_cap(api):
    api("POST", "/users", [{"userId": "u1", "attributes": {f"a{i}": i for i in range(50)}}])
    answer = api("POST", "/users", [{"userId": "u1", "attributes": {"b": 1}}]).get_json()
    assert answer["errors"] == [{"index": 0, "field": "users[0].attributes",
                                 "message": "at most 50 attributes per user; this user would have 51"}]
    ok = api("POST", "/users", [{"userId": "u1", "attributes": {"b": 1, "a0": None}}]).get_json()
    assert ok["errors"] == [] and len(_attrs("u1")) == 50 and "a0" not in _attrs("u1")


def test_attributes_that_are_not_an_object_are_a_400(api):
    answer = api("POST", "/users", {"users": [{"userId": "u1", "attributes": ["plan"]}]})
    assert answer.status_code == 400
    assert answer.get_json()["error"]["details"][0]["field"] == "users[0].attributes"


def test_a_name_registered_by_a_racing_call_decides_the_type(api):
    users.upsert([{"userId": "u1", "attributes": {"plan": "gold"}}])
    # The registry now says string; a call assuming it is new with a number type is checked again.
    answer = users.upsert([{"userId": "u2", "attributes": {"plan": 5}}], types={"plan": "number"})
    assert answer["errors"][0]["field"] == "users[0].attributes.plan"
    db.session.execute(UserAttribute.__table__.delete().where(UserAttribute.name == "plan"))
    db.session.commit()
    answer = users.upsert([{"userId": "u3", "attributes": {"level": 5}}], types={"level": "string"})
    assert answer["errors"][0]["message"] == "level is a string attribute; 5 is not a string"
    assert attributes.types()["level"] == "string"


def test_attribute_registry_lists_types_and_counts(api, client, api_key):
    api("POST", "/users", [{"userId": "u1", "attributes": {"plan": "gold", "seats": 2}},
                           {"userId": "u2", "attributes": {"plan": "free"}}, {"userId": "u3"}])
    api("POST", "/users", [{"userId": "u2", "attributes": {"plan": None}}])
    headers = {"Authorization": f"Bearer {api_key('support')}"}
    answer = client.get("/api/v1/attributes", headers=headers)
    assert answer.status_code == 200
    assert answer.get_json() == [{"name": "plan", "type": "string", "users": 1},
                                 {"name": "seats", "type": "number", "users": 1}]
    assert client.post("/api/v1/users", json=[{"userId": "u9"}], headers=headers).status_code == 403


def test_concurrent_calls_registering_and_merging_attributes_all_succeed(app, api_key):
    from tests.test_input_rules import _race
    key = api_key("marketer")
    counter = iter(range(8))

    def call(client, headers):
        i = next(counter)
        value = i if i % 2 else f"text {i}"  # half say level is a number, half a string
        return client.post("/api/v1/users", json=[{"userId": f"r{i}", "attributes": {"level": value}},
                                                  {"userId": "shared", "attributes": {f"a{i}": i}}], headers=headers)
    out = _race(app, key, 8, call)
    assert [status for status, _ in out] == [200] * 8, out
    registered = attributes.types()["level"]
    refused = [e for _, body in out for e in body["errors"]]
    assert all(e["field"] == "users[0].attributes.level" and f"level is a {registered} attribute" in e["message"]
               for e in refused)
    assert len(refused) == 4  # exactly the four calls whose value has the other type
    assert _attrs("shared") == {f"a{i}": i for i in range(8)}  # every call's attribute kept: merged, not replaced
