"""Static lists (services/lists.py): validation, merging, size == member rows, CSV staging,
saving a campaign's recipients, and delete refused while an unsent campaign uses the list."""

import io

import pytest
from sqlalchemy import func, select, update

from dashboard.errors import LifecycleError, NotFound, ValidationError
from dashboard.extensions import db
from dashboard.models import AuditEvent, Campaign, Recipient
from dashboard.models.user import ListMember, UserList
from dashboard.services import campaigns, recipients
from dashboard.services import lists as service
from dashboard.services.actor import Actor
from tests.test_api_campaigns import make_template

ACTOR = Actor.system("test")


def rows(list_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(ListMember).where(ListMember.list_id == list_id))


def member_ids(list_id: int) -> list[str]:
    return list(db.session.scalars(select(ListMember.user_id).where(ListMember.list_id == list_id)
                                   .order_by(ListMember.user_id)))


def assert_size_matches(list_id: int) -> int:
    db.session.expire_all()
    size = db.session.get(UserList, list_id).size
    assert size == rows(list_id)
    return size


def test_create_with_members_merges_duplicates_and_counts_rows():
    made = service.create("  VIPs ", "Top spenders", ACTOR, ["u1", "u2", "u1", "u3"])
    assert made.name == "VIPs" and made.description == "Top spenders"
    assert member_ids(made.id) == ["u1", "u2", "u3"]
    assert assert_size_matches(made.id) == 3
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "list.created")).one()
    assert event.target_id == str(made.id) and event.details["size"] == 3


@pytest.mark.parametrize("name,description,field", [
    (None, None, "name"), ("   ", None, "name"), (5, None, "name"), ("x" * 201, None, "name"),
    ("ok", 7, "description"), ("ok", "d" * 2001, "description"), ("bad\x00name", None, "name"),
    (" " + "x" * 200, None, "name"),
])
def test_create_validation_names_the_field(name, description, field):
    with pytest.raises(ValidationError) as err:
        service.create(name, description, ACTOR)
    assert err.value.details[0]["field"] == field
    assert db.session.scalar(select(func.count()).select_from(UserList)) == 0


def test_duplicate_name_is_a_conflict_case_insensitively():
    service.create("Beta testers", None, ACTOR)
    with pytest.raises(LifecycleError) as err:
        service.create("beta TESTERS", None, ACTOR)
    assert err.value.status == 409 and err.value.details[0]["field"] == "name" and "already" in err.value.message
    assert db.session.scalar(select(func.count()).select_from(UserList)) == 1


def test_add_members_rejects_the_whole_call_with_positions():
    made = service.create("L", None, ACTOR, ["keep"])
    with pytest.raises(ValidationError) as err:
        service.add_members(made.id, ["ok1", "bad id", "ok2", "", 5, " ok3"], ACTOR)
    assert [d["index"] for d in err.value.details] == [1, 3, 4, 5]
    assert err.value.details[0]["field"] == "userIds[1]"
    assert "positions 1, 3, 4, 5" in err.value.message and "nothing was changed" in err.value.message
    assert member_ids(made.id) == ["keep"] and assert_size_matches(made.id) == 1


def test_add_members_merges_and_ignores_existing_members():
    made = service.create("L", None, ACTOR, ["a", "b"])
    outcome = service.add_members(made.id, ["b", "c", "c", "d"], ACTOR)
    assert outcome == {"added": 2, "alreadyMembers": 1, "duplicates": 1, "size": 4}
    assert member_ids(made.id) == ["a", "b", "c", "d"] and assert_size_matches(made.id) == 4


def test_add_members_limits():
    made = service.create("L", None, ACTOR)
    with pytest.raises(ValidationError, match="At most 10,000"):
        service.add_members(made.id, [f"u{i}" for i in range(10_001)], ACTOR)
    with pytest.raises(ValidationError):
        service.add_members(made.id, [], ACTOR)
    with pytest.raises(ValidationError):
        service.add_members(made.id, "u1", ACTOR)
    outcome = service.add_members(made.id, [f"u{i:05d}" for i in range(10_000)], ACTOR)
    assert outcome["added"] == 10_000 and assert_size_matches(made.id) == 10_000


def test_members_are_paged_by_user_id():
    made = service.create("L", None, ACTOR, [f"user{i:03d}" for i in range(120, 0, -1)])
    seen, cursor = [], None
    while True:
        page = service.members(made.id, cursor, limit=50)
        seen += [m.user_id for m in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [f"user{i:03d}" for i in range(1, 121)]
    with pytest.raises(NotFound):
        service.members(made.id + 1000)


def test_remove_members_recounts():
    made = service.create("L", None, ACTOR, ["a", "b", "c"])
    assert service.remove_members(made.id, ["a", "c", "zzz"], ACTOR) == {"removed": 2, "notMembers": 1, "size": 1}
    assert member_ids(made.id) == ["b"] and assert_size_matches(made.id) == 1


def test_rename_and_describe():
    made = service.create("Old", None, ACTOR)
    service.create("Taken", None, ACTOR)
    with pytest.raises(LifecycleError):
        service.update_list(made.id, {"name": "taken"}, ACTOR)
    with pytest.raises(ValidationError) as err:
        service.update_list(made.id, {"name": "  "}, ACTOR)
    assert err.value.details[0]["field"] == "name"
    service.update_list(made.id, {"name": "New", "description": "about"}, ACTOR)
    db.session.expire_all()
    again = service.get(made.id)
    assert (again.name, again.description) == ("New", "about")
    renamed = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "list.renamed")).one()
    assert renamed.details == {"from": "Old", "to": "New"}


def _campaign_with_recipients(name="Spring") -> Campaign:
    if db.session.scalar(select(func.count()).select_from(Campaign)) == 0:
        make_template()
    campaign = campaigns.create({"name": name, "templateId": "promo", "channel": "in_app",
                                 "variables": {"offer": "10%"}}, ACTOR)
    recipients.add_manual(campaign.id, ["r1", "r2", "r3", "r4"], None, ACTOR)
    db.session.execute(update(Recipient).where(Recipient.campaign_id == campaign.id,
                                               Recipient.user_id.in_(["r1", "r3"])).values(status="sent"))
    db.session.execute(update(Recipient).where(Recipient.campaign_id == campaign.id,
                                               Recipient.user_id == "r4").values(status="failed"))
    db.session.commit()
    return campaign


def test_from_campaign_all_recipients_and_by_status():
    campaign = _campaign_with_recipients()
    everyone = service.from_campaign(campaign.id, "Everyone of Spring", ACTOR)
    assert member_ids(everyone.id) == ["r1", "r2", "r3", "r4"] and assert_size_matches(everyone.id) == 4
    sent = service.from_campaign(campaign.id, "Sent of Spring", ACTOR, status="sent")
    assert member_ids(sent.id) == ["r1", "r3"] and assert_size_matches(sent.id) == 2
    with pytest.raises(ValidationError) as err:
        service.from_campaign(campaign.id, "Bad", ACTOR, status="opened")
    assert err.value.details[0]["field"] == "status"
    with pytest.raises(LifecycleError):
        service.from_campaign(campaign.id, "sent of spring", ACTOR)  # the name is taken: nothing made
    with pytest.raises(NotFound):
        service.from_campaign(campaign.id + 99, "Nope", ACTOR)
    assert db.session.scalar(select(func.count()).select_from(UserList)) == 2


def test_delete_is_refused_while_a_draft_or_scheduled_campaign_uses_the_list():
    made = service.create("Audience", None, ACTOR, ["a", "b"])
    campaign = _campaign_with_recipients("Uses the list")
    db.session.execute(update(Campaign).where(Campaign.id == campaign.id)
                       .values(audience_kind="list", audience_id=made.id))
    db.session.commit()
    with pytest.raises(LifecycleError) as err:
        service.delete_list(made.id, ACTOR)
    assert "Uses the list" in err.value.message and err.value.details[0]["campaignId"] == campaign.id
    assert rows(made.id) == 2
    db.session.execute(update(Campaign).where(Campaign.id == campaign.id).values(status="scheduled"))
    db.session.commit()
    with pytest.raises(LifecycleError):
        service.delete_list(made.id, ACTOR)
    db.session.execute(update(Campaign).where(Campaign.id == campaign.id).values(status="sent"))
    db.session.commit()
    service.delete_list(made.id, ACTOR)
    assert db.session.get(UserList, made.id) is None and rows(made.id) == 0
    assert db.session.scalars(select(AuditEvent).where(AuditEvent.action == "list.deleted")).one().details["size"] == 2


def test_csv_preview_stages_then_confirm_imports_exactly_the_accepted_rows():
    made = service.create("L", None, ACTOR, ["already"])
    data = b"userId,plan\nalready,gold\nnew1,silver\nbad id,x\nnew1,again\n,empty\nnew2,\n"
    preview = service.check_csv(made.id, io.BytesIO(data))
    assert preview["accepted"] == 3 and preview["rejected"] == 2
    assert [e["row"] for e in preview["errors"]] == [4, 6]
    assert any("plan" in w["message"] for w in preview["warnings"])
    assert any("duplicate" in w["message"] for w in preview["warnings"])
    assert rows(made.id) == 1  # nothing saved by the preview
    outcome = service.confirm_csv(made.id, preview["token"], ACTOR)
    assert outcome == {"imported": 3, "added": 2, "alreadyMembers": 1, "size": 3}
    assert member_ids(made.id) == ["already", "new1", "new2"] and assert_size_matches(made.id) == 3
    assert "bad id" in service.rejected_csv(made.id, preview["token"])
    with pytest.raises(NotFound):
        service.confirm_csv(made.id, preview["token"], ACTOR)  # spent


def test_csv_import_now_is_all_or_nothing():
    made = service.create("L", None, ACTOR)
    with pytest.raises(ValidationError) as err:
        service.import_now(made.id, io.BytesIO(b"userId\nu1\nno good\n"), ACTOR)
    assert err.value.details[0]["row"] == 3 and rows(made.id) == 0
    with pytest.raises(Exception, match="No userId column"):
        service.import_now(made.id, io.BytesIO(b"name\nx\n"), ACTOR)
    outcome = service.import_now(made.id, io.BytesIO(b"userId\nu1\nno good\n"), ACTOR, skip_invalid=True)
    assert outcome["imported"] == 1 and member_ids(made.id) == ["u1"]


def test_import_rows_handles_a_large_file_in_one_go():
    made = service.create("Big", None, ACTOR)
    body = "userId\n" + "\n".join(f"user-{i}" for i in range(100_000)) + "\n"
    outcome = service.import_now(made.id, io.BytesIO(body.encode()), ACTOR)
    assert outcome["imported"] == 100_000 and assert_size_matches(made.id) == 100_000
