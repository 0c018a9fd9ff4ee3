"""A campaign's audience from a segment or a list: materialised at freeze or at send by one
INSERT … SELECT, with per-user variables from attributes (both databases)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from dashboard.errors import LifecycleError, ValidationError
from dashboard.extensions import db
from dashboard.models import (
    AuditEvent,
    Campaign,
    ListMember,
    Notification,
    Recipient,
    Segment,
    Template,
    User,
    UserAttribute,
    UserList,
)
from dashboard.services import audiences, campaigns, lifecycle, recipients
from dashboard.services.actor import Actor
from tests.engine import drain
from tests.test_api_campaigns import make_template

ACTOR = Actor.system("test")
PRO = {"match": "all", "conditions": [{"type": "attribute", "attribute": "plan", "operator": "eq", "value": "pro"}]}


def make_users(n: int, **extra) -> None:
    """n users; every third is on the free plan, the rest pro; each has firstName and an email."""
    for name, kind in (("plan", "string"), ("firstName", "string"), ("score", "number"), ("offer", "string")):
        if db.session.get(UserAttribute, name) is None:
            db.session.add(UserAttribute(name=name, type=kind))
    db.session.add_all([
        User(user_id=f"u{i}", email=f"u{i}@example.com",
             attributes={"plan": "free" if i % 3 == 0 else "pro", "firstName": f"Name{i}", "score": i} | extra)
        for i in range(n)])
    db.session.commit()


def make_segment(definition=None, name: str = "Pro users") -> Segment:
    segment = Segment(name=name, definition=definition or PRO, created_by="test")
    db.session.add(segment)
    db.session.commit()
    return segment


def make_list(user_ids, name: str = "VIPs") -> UserList:
    user_list = UserList(name=name, size=len(user_ids), created_by="test")
    db.session.add(user_list)
    db.session.flush()
    db.session.add_all([ListMember(list_id=user_list.id, user_id=u) for u in user_ids])
    db.session.commit()
    return user_list


def make_campaign(name: str = "C", variables=None, template: str = "promo") -> Campaign:
    if db.session.scalar(select(Template.id).where(Template.template_id == template)) is None:
        make_template(template)
    return campaigns.create({"name": name, "templateId": template,
                             "variables": {"offer": "10%"} if variables is None else variables}, ACTOR)


def fresh(campaign_id: int) -> Campaign:
    db.session.expire_all()
    return db.session.get(Campaign, campaign_id)


def recipient_rows(campaign_id: int) -> dict[str, Recipient]:
    return {r.user_id: r for r in db.session.scalars(select(Recipient).where(Recipient.campaign_id == campaign_id))}


def assert_counters_are_rows(campaign: Campaign) -> None:
    rows = dict(db.session.execute(select(Recipient.status, func.count()).where(Recipient.campaign_id == campaign.id)
                                   .group_by(Recipient.status)).all())
    assert campaign.total == sum(rows.values())
    assert (campaign.pending, campaign.sent, campaign.failed, campaign.skipped) == tuple(
        rows.get(s, 0) for s in ("pending", "sent", "failed", "skipped"))


def test_a_segment_count_equals_the_recipients_materialised_at_freeze_and_at_send(app):
    from dashboard.services import segments

    make_users(30)
    segment = make_segment()
    expected = segments.count(segment.definition)
    assert expected == 20
    frozen = make_campaign("Frozen")
    audiences.set_audience(frozen.id, "segment", segment.id, ACTOR)
    frozen = audiences.freeze(frozen.id, ACTOR)
    assert (frozen.total, frozen.pending, frozen.audience_size) == (expected, expected, expected)
    assert frozen.audience_frozen_at is not None
    assert set(recipient_rows(frozen.id)) == {f"u{i}" for i in range(30) if i % 3}
    assert_counters_are_rows(fresh(frozen.id))

    at_send = make_campaign("At send")
    audiences.set_audience(at_send.id, "segment", segment.id, ACTOR)
    assert fresh(at_send.id).total == 0  # nothing until it is frozen or sent
    sent = lifecycle.send(at_send.id, None, ACTOR)
    assert sent.status == "sending" and sent.total == expected and sent.audience_size == expected
    drain()
    done = fresh(at_send.id)
    assert (done.status, done.sent, done.total) == ("sent", expected, expected)
    assert db.session.scalar(select(func.count()).select_from(Notification)
                             .where(Notification.campaign_id == at_send.id)) == expected
    assert_counters_are_rows(done)


def test_a_list_materialises_its_members_with_directory_emails_and_outsiders_too(app):
    make_users(5)
    user_list = make_list(["u1", "u2", "ghost"])
    c = make_campaign()
    audiences.set_audience(c.id, "list", user_list.id, ACTOR)
    c = audiences.freeze(c.id, ACTOR)
    rows = recipient_rows(c.id)
    assert set(rows) == {"u1", "u2", "ghost"}
    assert rows["u1"].email == "u1@example.com" and rows["ghost"].email is None
    assert rows["ghost"].variables == {}
    assert rows["u2"].variables == {"firstName": "Name2"}  # only the template's variables
    assert (c.total, c.audience_size, c.audience_name) == (3, 3, "VIPs")


def test_one_list_reused_by_two_campaigns_reaches_its_members_in_both(app):
    make_users(6)
    user_list = make_list(["u0", "u1", "u4"])
    first, second = make_campaign("First"), make_campaign("Second")
    for c in (first, second):
        audiences.set_audience(c.id, "list", user_list.id, ACTOR)
        lifecycle.send(c.id, None, ACTOR)
    drain()
    for c in (first, second):
        done = fresh(c.id)
        assert (done.status, done.sent, done.total) == ("sent", 3, 3)
        users = set(db.session.scalars(select(Notification.user_id).where(Notification.campaign_id == c.id)))
        assert users == {"u0", "u1", "u4"}
    assert db.session.get(UserList, user_list.id).size == 3  # the list itself is untouched


def test_variables_from_attributes_reach_the_rendered_in_app_notification(app):
    make_users(4)
    segment = make_segment()
    c = make_campaign(variables={})  # offer is required: it comes from each user's attributes
    db.session.execute(User.__table__.update().values(attributes={"plan": "pro", "firstName": "Ada",
                                                                  "offer": "20% off"})
                       .where(User.user_id == "u1"))
    db.session.execute(User.__table__.update().values(attributes={"plan": "pro", "offer": "5% off"})
                       .where(User.user_id == "u2"))
    db.session.execute(User.__table__.update().values(attributes={"plan": "free", "offer": "x"})
                       .where(User.user_id.in_(["u0", "u3"])))
    db.session.commit()
    audiences.set_audience(c.id, "segment", segment.id, ACTOR)
    lifecycle.send(c.id, None, ACTOR)
    drain()
    notes = {n.user_id: n for n in db.session.scalars(select(Notification).where(Notification.campaign_id == c.id))}
    assert set(notes) == {"u1", "u2"}
    assert (notes["u1"].title, notes["u1"].body.strip()) == ("Hi Ada", "20% off")
    assert (notes["u2"].title, notes["u2"].body.strip()) == ("Hi there", "5% off")  # the schema's default


def test_a_refused_send_leaves_no_recipients_and_the_draft_unchanged(app):
    make_users(9)
    segment = make_segment()
    make_template(status="draft")
    c = campaigns.create({"name": "Not approved", "templateId": "promo", "variables": {"offer": "1"}}, ACTOR)
    audiences.set_audience(c.id, "segment", segment.id, ACTOR)
    with pytest.raises(ValidationError, match="approve it before sending"):
        lifecycle.send(c.id, None, ACTOR)
    c = fresh(c.id)
    assert (c.status, c.total, c.audience_frozen_at, c.audience_size) == ("draft", 0, None, None)
    assert recipient_rows(c.id) == {}


def test_a_required_variable_missing_from_attributes_refuses_the_send_and_leaves_nothing(app):
    make_users(6)
    segment = make_segment()
    c = make_campaign(variables={})
    audiences.set_audience(c.id, "segment", segment.id, ACTOR)
    with pytest.raises(ValidationError, match="missing a required variable"):
        lifecycle.send(c.id, None, ACTOR)
    assert fresh(c.id).total == 0 and recipient_rows(c.id) == {}


def test_an_empty_audience_is_a_clear_400_at_send_and_at_freeze(app):
    make_users(3)
    segment = make_segment({"match": "all", "conditions": [
        {"type": "attribute", "attribute": "plan", "operator": "eq", "value": "enterprise"}]}, name="Enterprise")
    c = make_campaign()
    audiences.set_audience(c.id, "segment", segment.id, ACTOR)
    with pytest.raises(ValidationError, match="The segment “Enterprise” matches no users"):
        lifecycle.send(c.id, None, ACTOR)
    with pytest.raises(ValidationError, match="matches no users"):
        audiences.freeze(c.id, ACTOR)
    assert fresh(c.id).status == "draft"
    empty = make_list([], name="Empty")
    audiences.set_audience(c.id, "list", empty.id, ACTOR)
    with pytest.raises(ValidationError, match="The list “Empty” has no members"):
        lifecycle.send(c.id, None, ACTOR)


def test_scheduling_takes_the_snapshot_when_pressed(app):
    make_users(6)
    user_list = make_list(["u1", "u2"])
    c = make_campaign()
    audiences.set_audience(c.id, "list", user_list.id, ACTOR)
    scheduled = lifecycle.send(c.id, _in_a_day(), ACTOR)
    assert scheduled.status == "scheduled" and scheduled.total == 2 and scheduled.audience_frozen_at is not None
    db.session.add(ListMember(list_id=user_list.id, user_id="u3"))
    db.session.commit()
    assert fresh(c.id).total == 2  # later members are not in this send
    back = lifecycle.unschedule(c.id, ACTOR)
    assert back.status == "draft" and back.total == 2 and back.audience_size == 2  # the snapshot stays


def _in_a_day() -> str:
    from datetime import timedelta

    from dashboard.models import utcnow
    return (utcnow() + timedelta(days=1)).isoformat()


def test_one_source_of_recipients_409s_both_ways(app):
    make_users(3)
    user_list = make_list(["u1"])
    hand = make_campaign("Hand")
    recipients.add_manual(hand.id, ["a", "b"], None, ACTOR)
    with pytest.raises(LifecycleError, match="remove the 2 recipients first"):
        audiences.set_audience(hand.id, "list", user_list.id, ACTOR)
    assert fresh(hand.id).audience_kind is None and fresh(hand.id).total == 2
    chosen = make_campaign("Chosen")
    audiences.set_audience(chosen.id, "list", user_list.id, ACTOR)
    with pytest.raises(LifecycleError, match="audience is the list “VIPs”"):
        recipients.add_manual(chosen.id, ["a"], None, ACTOR)
    with pytest.raises(LifecycleError, match="Clear the audience first"):
        recipients.import_accepted(chosen.id, [("a", {}, None)], ACTOR)
    assert fresh(chosen.id).total == 0


def test_freezing_again_refreshes_and_changing_or_clearing_drops_the_snapshot(app):
    make_users(6)
    user_list = make_list(["u1", "u2"])
    segment = make_segment()
    c = make_campaign()
    audiences.set_audience(c.id, "list", user_list.id, ACTOR)
    assert audiences.freeze(c.id, ACTOR).total == 2
    db.session.add(ListMember(list_id=user_list.id, user_id="u5"))
    db.session.commit()
    again = audiences.freeze(c.id, ACTOR)
    assert again.total == again.audience_size == 3 and set(recipient_rows(c.id)) == {"u1", "u2", "u5"}
    changed = audiences.set_audience(c.id, "segment", segment.id, ACTOR)
    assert (changed.total, changed.audience_frozen_at, changed.audience_kind) == (0, None, "segment")
    assert recipient_rows(c.id) == {}
    audiences.freeze(c.id, ACTOR)
    cleared = audiences.clear_audience(c.id, ACTOR)
    assert (cleared.total, cleared.audience_kind, cleared.audience_size) == (0, None, None)
    assert recipient_rows(c.id) == {}
    recipients.add_manual(c.id, ["hand"], None, ACTOR)  # hand-picked again
    actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.target_id == str(c.id))
                                 .order_by(AuditEvent.id)).all()
    assert [a for a in actions if "audience" in a] == [
        "campaign.audience_set", "campaign.audience_frozen", "campaign.audience_frozen", "campaign.audience_set",
        "campaign.audience_frozen", "campaign.audience_cleared"]


def test_above_the_limit_is_a_400_naming_the_size_and_nothing_is_left(app, monkeypatch):
    monkeypatch.setattr(audiences, "MAX_RECIPIENTS", 3)
    make_users(3)
    user_list = make_list(["a", "b", "c", "d", "e"])
    c = make_campaign()
    audiences.set_audience(c.id, "list", user_list.id, ACTOR)
    with pytest.raises(ValidationError, match="has 5 users; a campaign can reach at most 3"):
        audiences.freeze(c.id, ACTOR)
    with pytest.raises(ValidationError, match="has 5 users"):
        lifecycle.send(c.id, None, ACTOR)
    c = fresh(c.id)
    assert (c.status, c.total) == ("draft", 0) and recipient_rows(c.id) == {}
    assert audiences.MAX_RECIPIENTS == 3 and recipients.MAX_MANUAL == 10_000


def test_unknown_or_deleted_sources_are_400s_naming_the_field(app):
    c = make_campaign()
    with pytest.raises(ValidationError) as err:
        audiences.set_audience(c.id, "segment", 999, ACTOR)
    assert err.value.details[0]["field"] == "audience.segmentId"
    with pytest.raises(ValidationError) as err:
        audiences.set_audience(c.id, "list", 999, ACTOR)
    assert err.value.details[0]["field"] == "audience.listId"
    user_list = make_list(["a"])
    audiences.set_audience(c.id, "list", user_list.id, ACTOR)
    db.session.delete(db.session.get(UserList, user_list.id))
    db.session.commit()
    with pytest.raises(ValidationError, match="no list"):
        lifecycle.send(c.id, None, ACTOR)


def test_duplicate_copies_the_choice_not_the_snapshot_and_retry_failed_copies_no_audience(app):
    make_users(6)
    user_list = make_list(["u1", "u2"])
    c = make_campaign()
    audiences.set_audience(c.id, "list", user_list.id, ACTOR)
    lifecycle.send(c.id, None, ACTOR)
    drain()
    db.session.add(ListMember(list_id=user_list.id, user_id="u4"))
    db.session.commit()
    copy = lifecycle.duplicate(c.id, ACTOR)
    assert (copy.audience_kind, copy.audience_id, copy.total, copy.audience_frozen_at) == ("list", user_list.id, 0,
                                                                                          None)
    sent = lifecycle.send(copy.id, None, ACTOR)
    assert sent.total == 3  # re-materialised at its own send
    db.session.execute(Recipient.__table__.update().values(status="failed")
                       .where(Recipient.campaign_id == c.id, Recipient.user_id == "u1"))
    db.session.execute(Campaign.__table__.update().values(sent=1, failed=1).where(Campaign.id == c.id))
    db.session.commit()
    retry = lifecycle.retry_failed(c.id, ACTOR)
    assert retry.audience_kind is None and set(recipient_rows(retry.id)) == {"u1"}
