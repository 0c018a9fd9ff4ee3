"""Audiences → Segments pages: index (empty state, summaries, lazy counts), the builder's HTMX
partials (structure, live count, row errors), save with errors, delete with confirmation and the
409 explained, CSRF and roles."""

from __future__ import annotations

import re

import pytest

from dashboard.extensions import db
from dashboard.models import Campaign, Segment, User, UserAttribute, UserList
from dashboard.services import campaigns, segments, templates
from dashboard.services.actor import Actor
from tests.conftest import csrf_from

ACTOR = Actor.system("test")
HX = {"HX-Request": "true"}


@pytest.fixture
def directory():
    db.session.add_all([UserAttribute(name="plan", type="string"), UserAttribute(name="age", type="number"),
                        UserAttribute(name="signup", type="date")])
    db.session.add_all([User(user_id="a", attributes={"plan": "pro", "age": 40}),
                        User(user_id="b", attributes={"plan": "pro", "age": 20}),
                        User(user_id="c", attributes={"plan": "free", "age": 33})])
    db.session.commit()


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def _token(client) -> str:
    return csrf_from(client.get("/audiences/segments/new").get_data(as_text=True))


def form(token, *rows, match="all", **extra) -> dict:
    """Builder form data: rows are dicts of c-<i>-<field> values without the prefix."""
    data = {"csrf_token": token, "match": match, "rows": str(len(rows)), **extra}
    for i, row in enumerate(rows):
        for key, value in row.items():
            data[f"c-{i}-{key}"] = value
    return data


def test_empty_state_explains_segments(client, logged_in):
    logged_in("marketer")
    html = client.get("/audiences/segments").get_data(as_text=True)
    assert "No segments yet." in html and "New segment" in html
    assert 'aria-current="page">Audiences' in html
    assert 'aria-current="page">Segments' in html


def test_support_reads_but_cannot_build(client, logged_in, directory):
    segments.create({"name": "Pros", "definition": {"conditions": [
        {"type": "attribute", "attribute": "plan", "operator": "eq", "value": "pro"}]}}, ACTOR)
    logged_in("support")
    html = client.get("/audiences/segments").get_data(as_text=True)
    assert "Pros" in html and 'plan is "pro"' in text_of(html).replace("&#34;", '"')
    assert "/audiences/segments/new" not in html and "Delete" not in html
    assert client.get("/audiences/segments/new").status_code == 403
    sid = db.session.query(Segment.id).scalar()
    assert client.get(f"/audiences/segments/{sid}/count").get_data(as_text=True).strip().startswith(
        '<span class="segs-matched"')
    assert ">2<" in client.get(f"/audiences/segments/{sid}/count").get_data(as_text=True)


def test_live_count_and_row_errors(client, logged_in, directory):
    logged_in("marketer")
    token = _token(client)
    plan = {"kind": "attribute", "attribute": "plan", "operator": "eq", "value": "pro"}
    html = client.post("/audiences/segments/count", data=form(token, plan), headers=HX).get_data(as_text=True)
    assert "2 of 3 users match" in text_of(html)
    older = {"kind": "attribute", "attribute": "age", "operator": "gt", "value": "30"}
    html = client.post("/audiences/segments/count", data=form(token, plan, older), headers=HX).get_data(as_text=True)
    assert "1 of 3 users match" in text_of(html)
    html = client.post("/audiences/segments/count", data=form(token, plan, older, match="any"),
                       headers=HX).get_data(as_text=True)
    assert "3 of 3 users match" in text_of(html)
    # incomplete: the row says what is missing, no count, never a 500
    half = {"kind": "attribute", "attribute": "age", "operator": "gt", "value": ""}
    response = client.post("/audiences/segments/count", data=form(token, plan, half), headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Enter a value to count the users who match." in text_of(html) and "of 3 users match" not in html
    assert re.search(r'class="sb-prompt sb-error" id="row-err-1" hx-swap-oob="true">Enter a value to count<', html)
    assert re.search(r'id="row-err-0" hx-swap-oob="true"><', html)
    half["value"] = "lots"  # typed, and wrong: an error
    html = client.post("/audiences/segments/count", data=form(token, plan, half), headers=HX).get_data(as_text=True)
    assert "Finish the highlighted condition" in html
    assert re.search(r'class="field-error sb-error" id="row-err-1" hx-swap-oob="true">Must be a number<', html)
    empty_text = {"kind": "attribute", "attribute": "plan", "operator": "eq", "value": " "}
    html = client.post("/audiences/segments/count", data=form(token, empty_text), headers=HX).get_data(as_text=True)
    assert "Enter a value to count" in html and "0 of 3" not in html  # no count for a filter not written yet
    campaign = {"kind": "campaign", "event": "read", "campaign": "", "negate": "0"}
    html = client.post("/audiences/segments/count", data=form(token, campaign), headers=HX).get_data(as_text=True)
    assert re.search(r'id="row-err-0" hx-swap-oob="true">Pick a campaign<', html)


def test_count_ignores_the_intent(client, logged_in, directory):
    """HTMX sends the last button the form saw focused with every request from the form: Tab from
    a value onto a row's Remove sent intent=remove-0 with the count, which left row 0 out."""
    logged_in("marketer")
    token = _token(client)
    plan = {"kind": "attribute", "attribute": "plan", "operator": "eq", "value": "pro"}
    older = {"kind": "attribute", "attribute": "age", "operator": "gt", "value": "30"}
    for intent in ("remove-0", "add-attribute", "add-group", "save"):
        html = client.post("/audiences/segments/count", data=form(token, plan, older, intent=intent),
                           headers=HX).get_data(as_text=True)
        assert "1 of 3 users match" in text_of(html), intent
        assert 'id="row-err-2"' not in html  # no row was added either


def test_a_new_segment_starts_with_everyone(client, logged_in, directory):
    logged_in("marketer")
    html = client.get("/audiences/segments/new").get_data(as_text=True)
    assert 'name="rows" value="0"' in html and 'id="row-0"' not in html
    assert "All 3 users — add a condition to narrow it" in text_of(html)
    assert "0 of 3" not in html


def test_new_rows_ask_for_their_value(client, logged_in, directory):
    """A new row (the first attribute is a number here) asks for its value; no "Must be a number"
    before the user typed anything, and no count of a filter not written yet."""
    logged_in("marketer")
    token = _token(client)
    for intent in ("add-attribute", "add-group"):
        html = client.post("/audiences/segments/builder", data=form(token, intent=intent), headers=HX).get_data(
            as_text=True)
        assert "Must be a number" not in html, intent
        assert re.search(r'class="sb-prompt sb-error" id="row-err-\d">Enter a value to count<', html), intent
        assert "Enter a value to count the users who match." in text_of(html) and "of 3 users match" not in html
    inactive = client.post("/audiences/segments/builder", data=form(token, intent="add-inactive"),
                           headers=HX).get_data(as_text=True)
    assert "of 3 users match" in text_of(inactive)  # a complete row (30 days) counts at once


def test_builder_keeps_where_rows_came_from(client, logged_in, directory):
    """Each redrawn row says which row of the sent form it was (data-was): the page carries text
    typed during the redraw into the right row after a removal renumbers them."""
    logged_in("marketer")
    token = _token(client)
    plan = {"kind": "attribute", "attribute": "plan", "operator": "eq", "value": "pro"}
    older = {"kind": "attribute", "attribute": "age", "operator": "gt", "value": "30"}
    html = client.post("/audiences/segments/builder", data=form(token, plan, older, intent="remove-0"),
                       headers=HX).get_data(as_text=True)
    assert re.search(r'id="row-0" data-was="1"', html) and 'id="row-1"' not in html
    html = client.post("/audiences/segments/builder", data=form(token, plan, intent="add-list"),
                       headers=HX).get_data(as_text=True)
    assert re.search(r'id="row-0" data-was="0"', html) and re.search(r'id="row-1">', html)


def test_builder_structure_changes(client, logged_in, directory):
    logged_in("marketer")
    token = _token(client)
    plan = {"kind": "attribute", "attribute": "plan", "operator": "eq", "value": "pro"}
    html = client.post("/audiences/segments/builder", data=form(token, plan, intent="add-group"),
                       headers=HX).get_data(as_text=True)
    assert 'name="rows" value="3"' in html  # the group and its first condition
    assert 'name="c-1-kind" value="group"' in html and 'name="c-2-parent" value="1"' in html
    # changing the attribute to a number offers number operators and a number input
    age = {"kind": "attribute", "attribute": "age", "operator": "contains", "value": "x"}
    html = client.post("/audiences/segments/builder", data=form(token, age), headers=HX).get_data(as_text=True)
    assert '<option value="gt"' in html and '<option value="contains"' not in html
    assert 'type="number" step="any" name="c-0-value"' in html
    between = {"kind": "attribute", "attribute": "signup", "operator": "between", "value": "", "value2": ""}
    html = client.post("/audiences/segments/builder", data=form(token, between), headers=HX).get_data(as_text=True)
    assert 'type="date"  name="c-0-value"' in html and 'name="c-0-value2"' in html
    exists = {"kind": "attribute", "attribute": "plan", "operator": "exists"}
    html = client.post("/audiences/segments/builder", data=form(token, exists), headers=HX).get_data(as_text=True)
    assert 'name="c-0-value"' not in html and "3 of 3 users match" in text_of(html)
    # remove the group and what is in it
    group = {"kind": "group", "match": "any"}
    inner = {"kind": "inactive", "days": "7", "parent": "1"}
    html = client.post("/audiences/segments/builder", data=form(token, plan, group, inner, intent="remove-1"),
                       headers=HX).get_data(as_text=True)
    assert 'name="rows" value="1"' in html and "group" not in html.split('name="rows"')[1].split("sb-add")[0]


def test_save_with_a_group_then_edit(client, logged_in, directory):
    logged_in("marketer")
    token = _token(client)
    rows = [{"kind": "attribute", "attribute": "plan", "operator": "eq", "value": "pro"},
            {"kind": "group", "match": "any"},
            {"kind": "attribute", "attribute": "age", "operator": "gte", "value": "35", "parent": "1"},
            {"kind": "inactive", "days": "30", "parent": "1"}]
    response = client.post("/audiences/segments/new", data=form(token, *rows, name="Pros", description="d",
                                                                 intent="save"))
    assert response.status_code == 302
    seg = db.session.query(Segment).one()
    assert seg.definition == {"match": "all", "conditions": [
        {"type": "attribute", "attribute": "plan", "operator": "eq", "value": "pro"},
        {"type": "group", "match": "any", "conditions": [
            {"type": "attribute", "attribute": "age", "operator": "gte", "value": 35},
            {"type": "inactive", "days": 30}]}]}
    index = client.get("/audiences/segments").get_data(as_text=True)
    assert "Segment “Pros” saved: 2 users match it now." in index
    edit = client.get(f"/audiences/segments/{seg.id}/edit").get_data(as_text=True)
    assert 'name="c-2-parent" value="1"' in edit and 'value="35"' in edit
    renamed = client.post(f"/audiences/segments/{seg.id}/edit",
                          data=form(token, *rows[:1], name="Just pros", intent="save"))
    assert renamed.status_code == 302
    db.session.expire_all()
    assert db.session.get(Segment, seg.id).name == "Just pros"
    assert len(db.session.get(Segment, seg.id).definition["conditions"]) == 1


def test_save_errors_show_next_to_fields(client, logged_in, directory):
    logged_in("marketer")
    token = _token(client)
    bad = {"kind": "attribute", "attribute": "age", "operator": "between", "value": "9", "value2": "1"}
    response = client.post("/audiences/segments/new", data=form(token, bad, name="", intent="save"))
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert 'id="name-error">Is required<' in html
    assert re.search(r'id="row-err-0">The low end must not be above the high end<', html)
    assert db.session.query(Segment).count() == 0
    blank = {"kind": "attribute", "attribute": "plan", "operator": "contains", "value": ""}
    response = client.post("/audiences/segments/new", data=form(token, blank, name="", intent="save"))
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and 'id="name-error">Is required<' in html
    assert re.search(r'class="field-error sb-error" id="row-err-0">Enter a value<', html)
    response = client.post("/audiences/segments/new", data=form(token, blank, name="Blank", intent="save"))
    assert response.status_code == 400 and db.session.query(Segment).count() == 0
    segments.create({"name": "Taken", "definition": {}}, ACTOR)
    html = client.post("/audiences/segments/new", data=form(token, name="Taken", intent="save")).get_data(as_text=True)
    assert "already exists" in html


def test_no_javascript_add_row(client, logged_in, directory):
    logged_in("marketer")
    token = _token(client)
    html = client.post("/audiences/segments/new", data=form(token, name="x", intent="add-list")).get_data(as_text=True)
    assert 'name="c-0-kind" value="list"' in html and "Choose a list" in html
    assert db.session.query(Segment).count() == 0


def test_delete_confirmation_and_409(client, logged_in, directory):
    logged_in("marketer")
    sid = segments.create({"name": "Pros", "definition": {}}, ACTOR).id
    templates.create({"name": "T", "templateId": "t", "channels": {"in_app": {"title": "Hi", "body": "B"}}}, ACTOR)
    draft = campaigns.create({"name": "Winter <b>push</b>", "templateId": "t"}, ACTOR)
    row = db.session.get(Campaign, draft.id)
    row.audience_kind, row.audience_id = "segment", sid
    db.session.commit()
    page = client.get(f"/audiences/segments/{sid}/delete").get_data(as_text=True)
    assert "cannot be deleted now" in page and "Winter &lt;b&gt;push&lt;/b&gt;" in page
    token = _token(client)
    refused = client.post(f"/audiences/segments/{sid}/delete", data={"csrf_token": token})
    assert refused.status_code == 409 and db.session.get(Segment, sid) is not None
    row.audience_kind = None
    db.session.commit()
    page = client.get(f"/audiences/segments/{sid}/delete").get_data(as_text=True)
    assert "Delete segment" in page
    done = client.post(f"/audiences/segments/{sid}/delete", data={"csrf_token": token})
    assert done.status_code == 302
    db.session.expire_all()
    assert db.session.get(Segment, sid) is None
    assert "Segment “Pros” deleted." in client.get("/audiences/segments").get_data(as_text=True)


def test_csrf_is_required(client, logged_in, directory):
    logged_in("marketer")
    plan = {"kind": "attribute", "attribute": "plan", "operator": "eq", "value": "pro"}
    data = form("", plan, name="No token", intent="save")
    del data["csrf_token"]
    assert client.post("/audiences/segments/new", data=data).status_code == 400
    assert client.post("/audiences/segments/count", data=data, headers=HX).status_code == 400
    assert db.session.query(Segment).count() == 0


def test_user_text_is_escaped(client, logged_in, directory):
    lst = UserList(name="<script>x</script>", size=1)
    db.session.add(lst)
    db.session.commit()
    segments.create({"name": "<img src=x onerror=alert(1)>", "description": "<b>d</b>",
                     "definition": {"conditions": [
                         {"type": "attribute", "attribute": "plan", "operator": "eq", "value": "<i>v</i>"},
                         {"type": "list", "listId": lst.id}]}}, ACTOR)
    logged_in("marketer")
    html = client.get("/audiences/segments").get_data(as_text=True)
    assert "<img src=x" not in html and "<script>x" not in html and "<i>v</i>" not in html and "<b>d</b>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
