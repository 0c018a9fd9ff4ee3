"""Segments service: every operator × type against a small directory (exact userIds), missing and
wrongly-typed values, nesting, engagement, inactivity, lists, validation, CRUD and the 409."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from dashboard.errors import LifecycleError, NotFound, ValidationError
from dashboard.extensions import db
from dashboard.models import (
    AuditEvent,
    Campaign,
    CampaignStatus,
    LinkClick,
    ListMember,
    Notification,
    Recipient,
    Segment,
    User,
    UserAttribute,
    UserList,
)
from dashboard.services import campaigns, segments, templates
from dashboard.services.actor import Actor

ACTOR = Actor.system("test")
TODAY = datetime.now(UTC).date()


def day(n: int) -> str:
    return (TODAY - timedelta(days=n)).isoformat()


@pytest.fixture
def directory():
    for name, kind in (("plan", "string"), ("city", "string"), ("age", "number"), ("vip", "boolean"),
                       ("signup", "date")):
        db.session.add(UserAttribute(name=name, type=kind))
    rows = {
        "u1": {"plan": "pro", "city": "Berlin", "age": 30, "vip": True, "signup": day(400)},
        "u2": {"plan": "free", "city": "berlin west", "age": 17.5, "vip": False, "signup": day(30)},
        "u3": {"plan": "Pro", "city": "Paris_Nord", "age": 45, "signup": day(3)},
        "u4": {},
        # wrongly typed values (written before the registry said otherwise): never match a range
        "u5": {"plan": 5, "age": "old", "vip": "yes", "signup": 20260101},
    }
    for user_id, attrs in rows.items():
        db.session.add(User(user_id=user_id, attributes=attrs))
    db.session.commit()
    return rows


def ids(definition) -> set[str]:
    clean = segments.validate(definition)
    found = set(db.session.scalars(select(User.user_id).where(segments.compile(clean))))
    assert segments.count(definition) == len(found)
    return found


def attr(name, op, value=None):
    cond = {"type": "attribute", "attribute": name, "operator": op}
    if value is not None:
        cond["value"] = value
    return {"match": "all", "conditions": [cond]}


ALL5 = {"u1", "u2", "u3", "u4", "u5"}
CASES = [
    # string
    ("plan", "eq", "pro", {"u1"}),
    ("plan", "neq", "pro", {"u2", "u3", "u4", "u5"}),
    ("city", "contains", "berlin", {"u1", "u2"}),
    ("city", "contains", "_", {"u3"}),  # LIKE wildcards are escaped
    ("city", "contains", "%", set()),
    ("city", "not_contains", "berlin", {"u3", "u4", "u5"}),
    ("city", "starts_with", "BER", {"u1", "u2"}),
    ("city", "starts_with", "west", set()),
    ("plan", "in", ["pro", "free"], {"u1", "u2"}),
    ("plan", "not_in", ["pro", "free"], {"u3", "u4", "u5"}),
    ("plan", "exists", None, {"u1", "u2", "u3", "u5"}),
    ("plan", "not_exists", None, {"u4"}),
    # number
    ("age", "eq", 30, {"u1"}),
    ("age", "eq", 30.0, {"u1"}),
    ("age", "eq", 17.5, {"u2"}),
    ("age", "neq", 30, {"u2", "u3", "u4", "u5"}),
    ("age", "gt", 30, {"u3"}),
    ("age", "gte", 30, {"u1", "u3"}),
    ("age", "lt", 30, {"u2"}),
    ("age", "lte", 30, {"u1", "u2"}),
    ("age", "between", [17.5, 30], {"u1", "u2"}),
    ("age", "between", [18, 100], {"u1", "u3"}),
    ("age", "exists", None, {"u1", "u2", "u3", "u5"}),
    ("age", "not_exists", None, {"u4"}),
    # boolean
    ("vip", "is_true", None, {"u1"}),
    ("vip", "is_false", None, {"u2"}),
    ("vip", "exists", None, {"u1", "u2", "u5"}),
    ("vip", "not_exists", None, {"u3", "u4"}),
    # date
    ("signup", "on", day(30), {"u2"}),
    ("signup", "before", day(30), {"u1"}),
    ("signup", "after", day(30), {"u3"}),
    ("signup", "between", [day(400), day(30)], {"u1", "u2"}),
    ("signup", "within_last_days", 30, {"u2", "u3"}),
    ("signup", "within_last_days", 7, {"u3"}),
    ("signup", "more_than_days_ago", 30, {"u1"}),
    ("signup", "more_than_days_ago", 500, set()),
    ("signup", "exists", None, {"u1", "u2", "u3", "u5"}),
    ("signup", "not_exists", None, {"u4"}),
]


@pytest.mark.parametrize(("name", "op", "value", "expected"), CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_every_operator_matches_exactly_these_users(directory, name, op, value, expected):
    assert ids(attr(name, op, value)) == expected


def test_every_operator_of_every_type_is_covered():
    types = {"plan": "string", "city": "string", "age": "number", "vip": "boolean", "signup": "date"}
    covered = {(types[c[0]], c[1]) for c in CASES}
    assert covered == {(kind, op) for kind, ops in segments.OPERATORS.items() for op in ops}


def test_empty_definition_is_every_user(directory):
    assert ids({"match": "all", "conditions": []}) == ALL5
    assert ids({}) == ALL5


def test_all_and_any_nest_to_depth_three(directory):
    definition = {"match": "any", "conditions": [
        {"type": "group", "match": "all", "conditions": [
            {"type": "attribute", "attribute": "age", "operator": "gte", "value": 30},
            {"type": "group", "match": "any", "conditions": [
                {"type": "attribute", "attribute": "city", "operator": "contains", "value": "paris"},
                {"type": "attribute", "attribute": "vip", "operator": "is_true"}]}]},
        {"type": "attribute", "attribute": "plan", "operator": "eq", "value": "free"}]}
    assert ids(definition) == {"u1", "u2", "u3"}
    both = {"match": "all", "conditions": [
        {"type": "attribute", "attribute": "city", "operator": "contains", "value": "berlin"},
        {"type": "attribute", "attribute": "age", "operator": "gte", "value": 18}]}
    assert ids(both) == {"u1"}
    either = {**both, "match": "any"}
    assert ids(either) == {"u1", "u2", "u3"}


def test_a_fourth_level_is_refused(directory):
    leaf = {"type": "attribute", "attribute": "vip", "operator": "is_true"}
    deep = {"match": "all", "conditions": [{"type": "group", "match": "all", "conditions": [
        {"type": "group", "match": "all", "conditions": [{"type": "group", "match": "all", "conditions": [leaf]}]}]}]}
    with pytest.raises(ValidationError) as err:
        segments.validate(deep)
    assert err.value.details[0]["field"] == "definition.conditions[0].conditions[0].conditions[0]"


@pytest.fixture
def engagement(directory):
    templates.create({"name": "T", "templateId": "t", "channels": {"in_app": {"title": "Hi", "body": "B"}}}, ACTOR)
    templates.transition("t", "approve", ACTOR)
    c1 = campaigns.create({"name": "Spring sale", "templateId": "t"}, ACTOR)
    c2 = campaigns.create({"name": "Other", "templateId": "t"}, ACTOR)
    c1.status = CampaignStatus.SENT
    now = datetime.now(UTC)
    recipients = {}
    for user_id, status in (("u1", "sent"), ("u2", "sent"), ("u3", "failed"), ("u4", "sent")):
        recipients[user_id] = Recipient(campaign_id=c1.id, user_id=user_id, status=status)
        db.session.add(recipients[user_id])
    db.session.flush()
    db.session.add_all([
        Notification(campaign_id=c1.id, recipient_id=recipients["u1"].id, user_id="u1",
                     read_at=now - timedelta(days=1)),
        Notification(campaign_id=c1.id, recipient_id=recipients["u2"].id, user_id="u2", clicked_at=now),
        # a one-call notification read long ago: counts for inactivity, not for campaign 1
        Notification(campaign_id=None, user_id="u3", read_at=now - timedelta(days=30)),
        LinkClick(campaign_id=c1.id, recipient_id=recipients["u4"].id, user_id="u4", url="https://e.test/a"),
    ])
    vip = UserList(name="VIP", size=3)
    db.session.add(vip)
    db.session.flush()
    db.session.add_all([ListMember(list_id=vip.id, user_id=u) for u in ("u1", "u3", "ghost")])
    db.session.commit()
    return {"c1": c1.id, "c2": c2.id, "list": vip.id}


def cond(**kwargs):
    return {"match": "all", "conditions": [kwargs]}


def test_campaign_engagement(engagement):
    c1 = engagement["c1"]
    assert ids(cond(type="campaign", event="received", campaignId=c1)) == {"u1", "u2", "u4"}
    assert ids(cond(type="campaign", event="received", campaignId=c1, negate=True)) == {"u3", "u5"}
    assert ids(cond(type="campaign", event="read", campaignId=c1)) == {"u1"}
    assert ids(cond(type="campaign", event="read", campaignId=c1, negate=True)) == ALL5 - {"u1"}
    # clicked: an in-app click (notifications.clicked_at) or an email link click (link_clicks)
    assert ids(cond(type="campaign", event="clicked", campaignId=c1)) == {"u2", "u4"}
    assert ids(cond(type="campaign", event="clicked", campaignId=c1, negate=True)) == {"u1", "u3", "u5"}
    assert ids(cond(type="campaign", event="received", campaignId=engagement["c2"])) == set()


def test_inactive_days(engagement):
    assert ids(cond(type="inactive", days=7)) == {"u2", "u3", "u4", "u5"}
    assert ids(cond(type="inactive", days=60)) == {"u2", "u4", "u5"}


def test_list_membership_and_negate(engagement):
    assert ids(cond(type="list", listId=engagement["list"])) == {"u1", "u3"}
    assert ids(cond(type="list", listId=engagement["list"], negate=True)) == {"u2", "u4", "u5"}


def test_mixed_attribute_and_engagement(engagement):
    definition = {"match": "all", "conditions": [
        {"type": "list", "listId": engagement["list"], "negate": False},
        {"type": "group", "match": "any", "conditions": [
            {"type": "campaign", "event": "read", "campaignId": engagement["c1"]},
            {"type": "attribute", "attribute": "city", "operator": "starts_with", "value": "par"}]}]}
    assert ids(definition) == {"u1", "u3"}


BAD = [
    ("not a dict", "definition"),
    ({"match": "most"}, "definition.match"),
    ({"conditions": "x"}, "definition.conditions"),
    ({"conditions": [7]}, "definition.conditions[0]"),
    ({"conditions": [{"type": "weird"}]}, "definition.conditions[0].type"),
    ({"conditions": [{"type": "attribute", "attribute": "nope", "operator": "eq", "value": "x"}]},
     "definition.conditions[0].attribute"),
    ({"conditions": [{"type": "attribute", "attribute": "bad name", "operator": "eq", "value": "x"}]},
     "definition.conditions[0].attribute"),
    ({"conditions": [{"type": "attribute", "attribute": "age", "operator": "contains", "value": "x"}]},
     "definition.conditions[0].operator"),
    ({"conditions": [{"type": "attribute", "attribute": "vip", "operator": "eq", "value": True}]},
     "definition.conditions[0].operator"),
    ({"conditions": [{"type": "attribute", "attribute": "age", "operator": "gt", "value": "30"}]},
     "definition.conditions[0].value"),
    ({"conditions": [{"type": "attribute", "attribute": "age", "operator": "gt", "value": True}]},
     "definition.conditions[0].value"),
    ({"conditions": [{"type": "attribute", "attribute": "age", "operator": "between", "value": [1]}]},
     "definition.conditions[0].value"),
    ({"conditions": [{"type": "attribute", "attribute": "age", "operator": "between", "value": [9, 1]}]},
     "definition.conditions[0].value"),
    ({"conditions": [{"type": "attribute", "attribute": "signup", "operator": "on", "value": "2026-02-30"}]},
     "definition.conditions[0].value"),
    ({"conditions": [{"type": "attribute", "attribute": "signup", "operator": "after", "value": "27/11/2026"}]},
     "definition.conditions[0].value"),
    ({"conditions": [{"type": "attribute", "attribute": "signup", "operator": "within_last_days", "value": 0}]},
     "definition.conditions[0].value"),
    ({"conditions": [{"type": "attribute", "attribute": "signup", "operator": "within_last_days", "value": 1.5}]},
     "definition.conditions[0].value"),
    ({"conditions": [{"type": "attribute", "attribute": "plan", "operator": "in", "value": []}]},
     "definition.conditions[0].value"),
    ({"conditions": [{"type": "attribute", "attribute": "plan", "operator": "in", "value": ["x"] * 501}]},
     "definition.conditions[0].value"),
    ({"conditions": [{"type": "attribute", "attribute": "plan", "operator": "in", "value": [1, 2]}]},
     "definition.conditions[0].value"),
    ({"conditions": [{"type": "attribute", "attribute": "plan", "operator": "contains", "value": ""}]},
     "definition.conditions[0].value"),
    ({"conditions": [{"type": "attribute", "attribute": "plan", "operator": "eq"}]},
     "definition.conditions[0].value"),
    ({"conditions": [{"type": "group", "match": "all", "conditions": []}]}, "definition.conditions[0].conditions"),
    ({"conditions": [{"type": "inactive", "days": 0}]}, "definition.conditions[0].days"),
    ({"conditions": [{"type": "inactive", "days": 3651}]}, "definition.conditions[0].days"),
    ({"conditions": [{"type": "campaign", "event": "opened", "campaignId": 1}]}, "definition.conditions[0].event"),
    ({"conditions": [{"type": "campaign", "event": "read", "campaignId": 999}]},
     "definition.conditions[0].campaignId"),
    ({"conditions": [{"type": "campaign", "event": "read", "campaignId": "1"}]},
     "definition.conditions[0].campaignId"),
    ({"conditions": [{"type": "list", "listId": 999}]}, "definition.conditions[0].listId"),
    ({"conditions": [{"type": "list", "listId": 1, "negate": "yes"}]}, "definition.conditions[0].negate"),
    ({"conditions": [{"type": "inactive", "days": 5}, {"type": "group", "match": "any", "conditions": [
        {"type": "attribute", "attribute": "age", "operator": "lt", "value": None}]}]},
     "definition.conditions[1].conditions[0].value"),
    ({"conditions": [{"type": "inactive", "days": 5}] * 51}, "definition.conditions[50]"),
]


@pytest.mark.parametrize(("definition", "field"), BAD, ids=[b[1] + str(i) for i, b in enumerate(BAD)])
def test_each_bad_field_is_named(directory, definition, field):
    with pytest.raises(ValidationError) as err:
        segments.validate(definition)
    assert field in [d["field"] for d in err.value.details]


def test_validate_returns_a_clean_copy(directory):
    clean = segments.validate({"conditions": [
        {"type": "attribute", "attribute": "vip", "operator": "is_true", "value": "ignored", "extra": 1},
        {"type": "attribute", "attribute": "plan", "operator": "in", "value": ["a", "b", "a"]},
        {"type": "inactive", "days": 30.0}]})
    assert clean == {"match": "all", "conditions": [
        {"type": "attribute", "attribute": "vip", "operator": "is_true"},
        {"type": "attribute", "attribute": "plan", "operator": "in", "value": ["a", "b"]},
        {"type": "inactive", "days": 30}]}


def test_values_are_bound_parameters_never_sql_text(directory):
    nasty = "x' OR '1'='1"
    clause = segments.compile(segments.validate(attr("plan", "eq", nasty)))
    assert nasty not in str(clause.compile(db.engine))
    assert ids(attr("plan", "eq", nasty)) == set()
    assert ids(attr("city", "contains", nasty)) == set()


def test_crud_with_audit_rows(directory):
    definition = attr("plan", "eq", "pro")
    seg = segments.create({"name": "  Pro users ", "description": "paying", "definition": definition}, ACTOR)
    assert (seg.name, seg.description, seg.created_by) == ("Pro users", "paying", ACTOR.label)
    with pytest.raises(ValidationError) as err:
        segments.create({"name": "Pro users", "definition": definition}, ACTOR)
    assert err.value.details[0]["field"] == "name"
    with pytest.raises(ValidationError) as err:
        segments.create({"name": "", "definition": {"match": "x"}}, ACTOR)
    assert {d["field"] for d in err.value.details} == {"name", "definition.match"}
    before = seg.updated_at
    updated = segments.update(seg.id, {"definition": attr("age", "gt", 18)}, ACTOR)
    assert updated.definition["conditions"][0]["attribute"] == "age"
    assert updated.name == "Pro users" and updated.updated_at >= before
    segments.delete(seg.id, ACTOR)
    assert db.session.get(Segment, seg.id) is None
    with pytest.raises(NotFound):
        segments.get(seg.id)
    actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.target_type == "segment")
                                 .order_by(AuditEvent.id)).all()
    assert actions == ["segment.created", "segment.updated", "segment.deleted"]


def test_delete_refused_while_a_draft_or_scheduled_campaign_uses_it(engagement):
    seg = segments.create({"name": "Pro", "definition": attr("plan", "eq", "pro")}, ACTOR)
    draft = db.session.get(Campaign, engagement["c2"])
    draft.audience_kind, draft.audience_id = "segment", seg.id
    db.session.commit()
    with pytest.raises(LifecycleError) as err:
        segments.delete(seg.id, ACTOR)
    assert err.value.status == 409 and '"Other"' in err.value.message
    assert db.session.get(Segment, seg.id) is not None
    draft.status = CampaignStatus.SENT  # a sent campaign keeps its frozen audience: deleting is fine
    db.session.commit()
    segments.delete(seg.id, ACTOR)
    assert db.session.get(Segment, seg.id) is None


def test_describe_in_words(engagement):
    definition = segments.validate({"match": "all", "conditions": [
        {"type": "attribute", "attribute": "plan", "operator": "eq", "value": "pro"},
        {"type": "group", "match": "any", "conditions": [
            {"type": "list", "listId": engagement["list"], "negate": True},
            {"type": "campaign", "event": "clicked", "campaignId": engagement["c1"]}]}]})
    campaigns_, lists = segments.names_for([definition])
    assert segments.describe(definition, campaigns_, lists) == \
        'plan is "pro" and (not in list "VIP" or clicked campaign "Spring sale")'
    assert segments.describe({"match": "all", "conditions": []}) == "Every user"


def test_a_saved_segment_still_counts_after_what_it_names_is_deleted(engagement):
    seg = segments.create({"name": "Mixed", "definition": {"match": "any", "conditions": [
        {"type": "list", "listId": engagement["list"]},
        {"type": "campaign", "event": "read", "campaignId": engagement["c2"], "negate": True},
        {"type": "attribute", "attribute": "city", "operator": "contains", "value": "paris"}]}}, ACTOR)
    definition = seg.definition
    db.session.delete(db.session.get(UserList, engagement["list"]))
    db.session.delete(db.session.get(Campaign, engagement["c2"]))
    db.session.delete(db.session.get(UserAttribute, "city"))
    db.session.commit()
    # the deleted list has no members, nobody read the deleted campaign, nobody has the attribute
    assert segments.count(definition) == 5
    assert segments.count({"conditions": [definition["conditions"][0]]}) == 0
    assert segments.count({"conditions": [definition["conditions"][2]]}) == 0
    with pytest.raises(ValidationError):  # an unsaved filter still says what is gone
        segments.count(definition, check_refs=True)
