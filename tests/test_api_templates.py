import pytest
from sqlalchemy import select

from dashboard.extensions import db
from dashboard.models import AuditEvent, TemplateVersion


def valid_template(**overrides) -> dict:
    body = {
        "name": "Spring Sale",
        "category": "promo",
        "tags": ["sale", "spring"],
        "channels": {
            "in_app": {"title": "Hi {{ firstName }}", "body": "Save {{discount}} today",
                       "imageUrl": "{{ banner }}", "actionUrl": "https://shop.test/sale"},
            "email": {"subject": "{{ firstName }}, spring is here", "text": "Save {{ discount }}",
                      "html": "<p>Save <b>{{ discount }}</b></p>"},
        },
        "variableSchema": [
            {"key": "firstName", "type": "string", "label": "First name", "required": True, "defaultValue": "there"},
            {"key": "discount", "type": "string", "required": True},
            {"key": "banner", "type": "image"},
        ],
    }
    body.update(overrides)
    return body


@pytest.fixture
def writer(client, api_key):
    headers = {"Authorization": f"Bearer {api_key('marketer')}"}

    def call(method: str, path: str, body=None):
        return client.open(f"/api/v1{path}", method=method, json=body, headers=headers)
    return call


def test_create_derives_slug_and_starts_as_draft_v1(writer):
    response = writer("POST", "/templates", valid_template())
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["templateId"] == "spring-sale"
    assert (body["status"], body["version"]) == ("draft", 1)
    assert body["variableSchema"][0] == {"key": "firstName", "type": "string", "label": "First name",
                                         "required": True, "defaultValue": "there"}
    again = writer("POST", "/templates", valid_template()).get_json()
    assert again["templateId"] == "spring-sale-2"


def test_create_with_given_template_id_and_duplicate(writer):
    assert writer("POST", "/templates", valid_template(templateId="promo-1")).status_code == 201
    dup = writer("POST", "/templates", valid_template(templateId="promo-1"))
    assert dup.status_code == 400
    assert dup.get_json()["error"]["details"] == [{"field": "templateId", "message": '"promo-1" is already taken'}]
    bad = writer("POST", "/templates", valid_template(templateId="Bad Slug!"))
    assert bad.status_code == 400 and bad.get_json()["error"]["details"][0]["field"] == "templateId"


def _details(response) -> dict:
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    return {d["field"]: d["message"] for d in error["details"]}


@pytest.mark.parametrize("schema,field,fragment", [
    ([{"key": "1abc", "type": "string"}], "variableSchema[0].key", "not a valid key"),
    ([{"key": "first-name", "type": "string"}], "variableSchema[0].key", "not a valid key"),
    ([{"key": "a", "type": "string"}, {"key": "a", "type": "image"}], "variableSchema[1].key", 'duplicate key "a"'),
    ([{"key": "pic", "type": "image", "defaultValue": "https://x.test/a.png"}], "variableSchema[0].defaultValue",
     "only allowed for string"),
    ([{"key": "x", "type": "number"}], "variableSchema[0].type", 'unknown type "number"'),
    ([{"type": "string"}], "variableSchema[0].key", "a key is required"),
])
def test_schema_rules(writer, schema, field, fragment):
    body = valid_template(variableSchema=schema, channels={"in_app": {"title": "t", "body": "b"}})
    details = _details(writer("POST", "/templates", body))
    assert fragment in details[field]


def test_placeholder_not_in_schema_is_rejected(writer):
    body = valid_template(channels={"in_app": {"title": "Hi {{ nickname }}", "body": "{{ config }}"}})
    details = _details(writer("POST", "/templates", body))
    assert details["channels.in_app.title"] == "uses {{ nickname }}, which is not in the variable schema"
    assert "{{ config }}" in details["channels.in_app.body"]


def test_empty_required_content_for_enabled_channel(writer):
    body = valid_template(channels={"in_app": {"title": "  ", "body": "x"}, "email": {"subject": "s", "text": ""}},
                          variableSchema=[])
    details = _details(writer("POST", "/templates", body))
    assert details["channels.in_app.title"] == "is required for an enabled channel"
    assert details["channels.email.text"] == "is required for an enabled channel"


def test_no_channel_unknown_channel_and_bad_url(writer):
    assert "channels" in _details(writer("POST", "/templates", valid_template(channels={})))
    details = _details(writer("POST", "/templates", valid_template(
        channels={"sms": {"body": "x"}, "in_app": {"title": "t", "body": "b", "imageUrl": "javascript:alert(1)"}},
        variableSchema=[])))
    assert 'unknown channel "sms"' in details["channels.sms"]
    assert "http(s) URL" in details["channels.in_app.imageUrl"]


def test_name_required_and_body_must_be_json(writer, client, api_key):
    assert _details(writer("POST", "/templates", valid_template(name=" ")))["name"] == "a name is required"
    raw = client.post("/api/v1/templates", data="nope", headers={"Authorization": f"Bearer {api_key()}"})
    assert raw.status_code == 400 and "JSON object" in raw.get_json()["error"]["message"]


def test_draft_edits_in_place(writer):
    writer("POST", "/templates", valid_template())
    response = writer("PATCH", "/templates/spring-sale", {"name": "Spring Sale 2"})
    body = response.get_json()
    assert response.status_code == 200
    assert (body["name"], body["version"], body["status"]) == ("Spring Sale 2", 1, "draft")
    assert db.session.scalar(select(TemplateVersion).where(TemplateVersion.version == 1)).name == "Spring Sale 2"


def test_editing_approved_creates_next_version_and_keeps_old(writer):
    writer("POST", "/templates", valid_template())
    approved = writer("POST", "/templates/spring-sale/approve").get_json()
    assert (approved["status"], approved["version"]) == ("approved", 1)
    new_channels = {"in_app": {"title": "New {{ firstName }}", "body": "Now {{ discount }}"}}
    edited = writer("PATCH", "/templates/spring-sale", {"channels": new_channels}).get_json()
    assert (edited["version"], edited["status"]) == (2, "draft")
    assert edited["channels"] == new_channels
    v1 = writer("GET", "/templates/spring-sale/versions/1").get_json()
    assert v1["channels"]["in_app"]["title"] == "Hi {{ firstName }}" and v1["approvedAt"]
    assert "email" in v1["channels"]
    # Draft v2 edits in place; v1 is still untouched.
    writer("PATCH", "/templates/spring-sale", {"name": "Renamed"})
    assert writer("GET", "/templates/spring-sale").get_json()["version"] == 2
    assert writer("GET", "/templates/spring-sale/versions/1").get_json()["name"] == "Spring Sale"
    assert writer("GET", "/templates/spring-sale/versions/9").status_code == 404


def test_patch_validates_and_template_id_is_immutable(writer):
    writer("POST", "/templates", valid_template())
    details = _details(writer("PATCH", "/templates/spring-sale", {"templateId": "other"}))
    assert details["templateId"] == "cannot be changed after creation"
    details = _details(writer("PATCH", "/templates/spring-sale", {"variableSchema": []}))
    assert "not in the variable schema" in details["channels.in_app.title"]
    assert writer("GET", "/templates/spring-sale").get_json()["variableSchema"][0]["key"] == "firstName"


def test_archive_blocks_edits_and_approval(writer):
    writer("POST", "/templates", valid_template())
    assert writer("POST", "/templates/spring-sale/archive").get_json()["status"] == "archived"
    conflict = writer("PATCH", "/templates/spring-sale", {"name": "x"})
    assert conflict.status_code == 409 and "archived" in conflict.get_json()["error"]["message"]
    assert writer("POST", "/templates/spring-sale/approve").status_code == 409


def test_transitions_are_audited(writer):
    writer("POST", "/templates", valid_template())
    writer("POST", "/templates/spring-sale/approve")
    writer("POST", "/templates/spring-sale/archive")
    rows = db.session.scalars(select(AuditEvent).where(AuditEvent.target_type == "template")
                              .order_by(AuditEvent.id)).all()
    assert [(r.action, r.from_status, r.to_status) for r in rows] == [
        ("template.created", None, "draft"), ("template.approved", "draft", "approved"),
        ("template.archived", "approved", "archived")]
    assert rows[1].actor_label.startswith("API key")


def test_list_filters_searches_and_paginates(writer):
    for i in range(5):
        writer("POST", "/templates", valid_template(name=f"Welcome {i}", category="onboarding"))
    writer("POST", "/templates", valid_template(name="Winback"))
    writer("POST", "/templates/winback/approve")
    assert [t["templateId"] for t in writer("GET", "/templates?status=approved").get_json()["items"]] == ["winback"]
    first = writer("GET", "/templates?q=welcome&limit=3").get_json()
    assert len(first["items"]) == 3 and first["nextCursor"]
    second = writer("GET", f"/templates?q=welcome&limit=3&cursor={first['nextCursor']}").get_json()
    assert len(second["items"]) == 2 and second["nextCursor"] is None
    names = {t["name"] for t in first["items"] + second["items"]}
    assert names == {f"Welcome {i}" for i in range(5)}
    assert writer("GET", "/templates?limit=500").status_code == 400
    assert writer("GET", "/templates?cursor=garbage!").status_code == 400
    assert writer("GET", "/templates?status=nope").status_code == 400


def test_support_reads_but_cannot_write(client, writer, api_key):
    writer("POST", "/templates", valid_template())
    support = {"Authorization": f"Bearer {api_key('support')}"}
    assert client.get("/api/v1/templates/spring-sale", headers=support).status_code == 200
    assert client.get("/api/v1/templates", headers=support).status_code == 200
    for method, path, body in [("POST", "/templates", valid_template(name="x")),
                               ("PATCH", "/templates/spring-sale", {"name": "x"}),
                               ("POST", "/templates/spring-sale/approve", None),
                               ("POST", "/templates/spring-sale/archive", None)]:
        response = client.open(f"/api/v1{path}", method=method, json=body, headers=support)
        assert response.status_code == 403, path
    assert writer("GET", "/templates/spring-sale").get_json()["status"] == "draft"


def test_unknown_template_is_404(writer):
    response = writer("GET", "/templates/nope")
    assert response.status_code == 404 and "nope" in response.get_json()["error"]["message"]
