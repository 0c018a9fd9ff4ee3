"""/api/v1/lists: CRUD, members paging, CSV import (a bad row → 400 with rows, nothing saved),
save-as-list, and roles."""

import io

import pytest
from sqlalchemy import func, select, update

from dashboard.extensions import db
from dashboard.models import Campaign, Recipient
from dashboard.models.user import ListMember, UserList
from tests.test_api_campaigns import campaign  # noqa: F401  (fixture)


def member_rows(list_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(ListMember).where(ListMember.list_id == list_id))


def test_crud(api):
    made = api("POST", "/lists", {"name": "Beta", "description": "Early birds", "userIds": ["u1", "u2", "u1"]})
    assert made.status_code == 201, made.get_json()
    body = made.get_json()
    assert body["name"] == "Beta" and body["description"] == "Early birds" and body["size"] == 2
    assert body["createdBy"].startswith("API key ")
    list_id = body["id"]
    assert api("GET", f"/lists/{list_id}").get_json()["size"] == 2
    assert [i["name"] for i in api("GET", "/lists").get_json()["items"]] == ["Beta"]
    assert api("GET", "/lists?q=eta").get_json()["items"][0]["id"] == list_id
    assert api("GET", "/lists?q=zzz").get_json()["items"] == []
    edited = api("PATCH", f"/lists/{list_id}", {"name": "Beta 2", "description": None})
    assert edited.status_code == 200 and edited.get_json()["name"] == "Beta 2"
    assert edited.get_json()["description"] is None
    assert api("DELETE", f"/lists/{list_id}").status_code == 204
    assert api("GET", f"/lists/{list_id}").status_code == 404
    assert db.session.scalar(select(func.count()).select_from(UserList)) == 0 and member_rows(list_id) == 0


@pytest.mark.parametrize("body,field", [
    ({}, "name"), ({"name": "  "}, "name"), ({"name": 3}, "name"), ({"name": "x" * 201}, "name"),
    ({"name": "ok", "description": ["a"]}, "description"), ({"name": "ok", "userIds": "u1"}, "userIds"),
    ({"name": "ok", "userIds": ["fine", "not fine"]}, "userIds[1]"),
])
def test_create_validation(api, body, field):
    response = api("POST", "/lists", body)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["details"][0]["field"] == field
    assert db.session.scalar(select(func.count()).select_from(UserList)) == 0


def test_taken_name_is_409(api):
    assert api("POST", "/lists", {"name": "Dup"}).status_code == 201
    response = api("POST", "/lists", {"name": "dup"})
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "name_taken"


def test_members_add_page_remove(api):
    list_id = api("POST", "/lists", {"name": "M"}).get_json()["id"]
    added = api("POST", f"/lists/{list_id}/members", {"userIds": [f"user-{i:03d}" for i in range(130)] + ["user-000"]})
    assert added.get_json() == {"added": 130, "alreadyMembers": 0, "duplicates": 1, "size": 130}
    again = api("POST", f"/lists/{list_id}/members", {"userIds": ["user-001", "user-200"]})
    assert again.get_json() == {"added": 1, "alreadyMembers": 1, "duplicates": 0, "size": 131}
    bad = api("POST", f"/lists/{list_id}/members", {"userIds": ["ok-1", "b a d"]})
    assert bad.status_code == 400 and bad.get_json()["error"]["details"][0]["index"] == 1
    assert member_rows(list_id) == 131
    seen, cursor = [], None
    while True:
        page = api("GET", f"/lists/{list_id}/members?limit=100" + (f"&cursor={cursor}" if cursor else "")).get_json()
        seen += [m["userId"] for m in page["items"]]
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert seen == sorted([f"user-{i:03d}" for i in range(130)] + ["user-200"])
    assert api("GET", f"/lists/{list_id}/members?limit=0").status_code == 400
    removed = api("POST", f"/lists/{list_id}/members/remove", {"userIds": ["user-000", "user-200", "nobody"]})
    assert removed.get_json() == {"removed": 2, "notMembers": 1, "size": 129}
    assert api("GET", f"/lists/{list_id}").get_json()["size"] == member_rows(list_id) == 129


def _upload(api, list_id, data: bytes, query: str = ""):
    return api("POST", f"/lists/{list_id}/import{query}", data={"file": (io.BytesIO(data), "ids.csv")},
               content_type="multipart/form-data")


def test_import_with_a_bad_row_is_400_with_rows_and_nothing_saved(api):
    list_id = api("POST", "/lists", {"name": "I"}).get_json()["id"]
    response = _upload(api, list_id, b"userId,plan\nu1,gold\nbad id,x\nu2,\n")
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_rows" and [d["row"] for d in error["details"]] == [3]
    assert member_rows(list_id) == 0 and api("GET", f"/lists/{list_id}").get_json()["size"] == 0
    dry = _upload(api, list_id, b"userId\nu1\nu2\n", "?dryRun=true").get_json()
    assert (dry["accepted"], dry["imported"]) == (2, 0) and member_rows(list_id) == 0
    done = _upload(api, list_id, b"userId\nu1\nu2\nu2\n").get_json()
    assert (done["imported"], done["added"], done["size"]) == (2, 2, 2) and member_rows(list_id) == 2
    skipped = _upload(api, list_id, b"userId\nu3\nno good\n", "?skipInvalid=true").get_json()
    assert skipped["imported"] == 1 and member_rows(list_id) == 3
    unreadable = _upload(api, list_id, b"name\nx\n")
    assert unreadable.status_code == 400 and unreadable.get_json()["error"]["code"] == "unreadable_file"
    missing = api("POST", f"/lists/{list_id}/import", data={}, content_type="multipart/form-data")
    assert missing.status_code == 400 and missing.get_json()["error"]["details"][0]["field"] == "file"


def test_save_as_list(api, campaign):  # noqa: F811
    cid = campaign["id"]
    assert api("POST", f"/campaigns/{cid}/recipients", {"userIds": ["a", "b", "c"]}).status_code == 200
    db.session.execute(update(Recipient).where(Recipient.campaign_id == cid, Recipient.user_id == "b")
                       .values(status="sent"))
    db.session.commit()
    everyone = api("POST", f"/campaigns/{cid}/save-as-list", {"name": "All of Spring"})
    assert everyone.status_code == 201 and everyone.get_json()["size"] == 3
    sent = api("POST", f"/campaigns/{cid}/save-as-list", {"name": "Sent of Spring", "status": "sent"})
    assert sent.status_code == 201 and sent.get_json()["size"] == 1
    assert member_rows(sent.get_json()["id"]) == 1
    assert api("POST", f"/campaigns/{cid}/save-as-list", {"name": "x", "status": "read"}).status_code == 400
    assert api("POST", f"/campaigns/{cid}/save-as-list", {"name": "all of spring"}).status_code == 409
    assert api("POST", "/campaigns/9999/save-as-list", {"name": "y"}).status_code == 404


def test_delete_while_a_draft_uses_it_is_409_naming_it(api, campaign):  # noqa: F811
    list_id = api("POST", "/lists", {"name": "Audience", "userIds": ["a"]}).get_json()["id"]
    db.session.execute(update(Campaign).where(Campaign.id == campaign["id"])
                       .values(audience_kind="list", audience_id=list_id))
    db.session.commit()
    response = api("DELETE", f"/lists/{list_id}")
    assert response.status_code == 409 and "Spring" in response.get_json()["error"]["message"]
    assert response.get_json()["error"]["details"][0]["campaignId"] == campaign["id"]
    assert api("GET", f"/lists/{list_id}").status_code == 200 and member_rows(list_id) == 1


@pytest.mark.parametrize("method,path,body", [
    ("POST", "/lists", {"name": "S"}), ("PATCH", "/lists/{id}", {"name": "S2"}), ("DELETE", "/lists/{id}", None),
    ("POST", "/lists/{id}/members", {"userIds": ["x"]}), ("POST", "/lists/{id}/members/remove", {"userIds": ["x"]}),
    ("POST", "/campaigns/1/save-as-list", {"name": "S3"}),
])
def test_support_role_reads_but_cannot_write(client, api, api_key, method, path, body):
    list_id = api("POST", "/lists", {"name": "Existing", "userIds": ["a"]}).get_json()["id"]
    headers = {"Authorization": f"Bearer {api_key('support')}"}
    assert client.get(f"/api/v1/lists/{list_id}", headers=headers).status_code == 200
    assert client.get(f"/api/v1/lists/{list_id}/members", headers=headers).get_json()["items"][0]["userId"] == "a"
    response = client.open("/api/v1" + path.format(id=list_id), method=method, json=body, headers=headers)
    assert response.status_code == 403
    db.session.expire_all()
    kept = db.session.get(UserList, list_id)
    assert (kept.name, kept.size, member_rows(list_id)) == ("Existing", 1, 1)
    assert db.session.scalar(select(func.count()).select_from(UserList)) == 1
