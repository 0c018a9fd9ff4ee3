"""The OpenAPI document is the API's contract: valid OpenAPI 3.1, every /api/v1 and /inbox/v1 route
in it and nothing in it that the app does not serve, served to keys and to signed-in people."""

import copy
import re

import pytest
import schemathesis

from dashboard.api.openapi import document

PREFIX = "/api/v1"
INBOX = "/inbox/v1"  # the end-user inbox: its paths name their own server (the document's root)
IGNORED_METHODS = {"HEAD", "OPTIONS"}
METHODS = {"get", "put", "post", "delete", "patch"}


def _route_paths(rule: str) -> list[str]:
    """A werkzeug rule as OpenAPI path templates (an any(a, b) converter is one path per value)."""
    paths = [""]
    for static, converter in re.findall(r"([^<]*)(?:<([^>]+)>)?", rule):
        paths = [p + static for p in paths]
        if not converter:
            continue
        kind = re.match(r"any\((.*)\):", converter)
        if kind:
            paths = [p + value.strip() for p in paths for value in kind.group(1).split(",")]
        else:
            paths = [p + "{}" for p in paths]
    return paths


def _served(app) -> set[tuple[str, str]]:
    """(method, full path) of every route under /api/v1 and /inbox/v1."""
    served = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith((PREFIX + "/", INBOX + "/")):
            continue
        for path in _route_paths(rule.rule):
            served |= {(method, path) for method in rule.methods - IGNORED_METHODS}
    return served


def _documented() -> set[tuple[str, str]]:
    """(method, full path): a path item's own `servers` replaces the document's."""
    base = document()["servers"][0]["url"]
    return {(method.upper(), (item.get("servers", [{"url": base}])[0]["url"].rstrip("/")
                              + re.sub(r"\{[^}]+\}", "{}", path)))
            for path, item in document()["paths"].items() for method in item if method in METHODS}


def test_document_is_valid_openapi_3_1():
    raw = document()
    assert raw["openapi"].startswith("3.1.")
    assert raw["servers"] == [{"url": PREFIX}]
    schemathesis.openapi.from_dict(copy.deepcopy(raw)).validate()


def test_every_api_route_is_documented(app):
    assert sorted(_served(app) - _documented()) == []
    assert ("GET", f"{INBOX}/stream") in _documented() and ("POST", f"{PREFIX}/users/{{}}/inbox-token") in _documented()


def test_inbox_operations_take_the_user_token_not_a_key():
    raw = document()
    assert raw["components"]["securitySchemes"]["inboxToken"]["scheme"] == "bearer"
    for path, item in raw["paths"].items():
        operations = [op for method, op in item.items() if method in METHODS]
        if path.startswith(INBOX):
            assert item["servers"][0]["url"] == "/", path
            expected = [] if path.endswith(".js") else [{"inboxToken": []}]
            assert all(op["security"] == expected for op in operations), path
        else:
            assert "servers" not in item and all("security" not in op for op in operations), path
    stream = raw["paths"][f"{INBOX}/stream"]["get"]["responses"]["200"]["content"]
    assert list(stream) == ["text/event-stream"]
    events = raw["components"]["schemas"]["InboxEvent"]["oneOf"]
    names = [e["properties"]["event"].get("const") or e["properties"]["event"]["enum"] for e in events]
    assert names == ["notification", "unread", ["reset", "expired"]]


def test_every_documented_operation_exists(app):
    assert sorted(_documented() - _served(app)) == []


def test_every_operation_states_its_errors():
    """Each operation names its answers for a bad key and, for writes, a bad body and a role."""
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            codes = set(operation["responses"])
            if operation.get("security") == []:  # public (the inbox widget's script)
                assert "200" in codes, (method, path)
                continue
            assert {"401", "429"} <= codes, (method, path)
            if "requestBody" in operation:
                assert "400" in codes and "413" in codes, (method, path)
            if method != "get":
                assert "403" in codes, (method, path)
            if any(p.get("$ref", "").endswith("/IdempotencyKey") for p in operation.get("parameters", [])):
                assert {"422", "503"} <= codes, (method, path)


def test_error_envelope_and_shapes_named_by_the_spec_are_documented():
    schemas = document()["components"]["schemas"]
    assert schemas["Error"]["properties"]["error"]["required"] == ["code", "message", "details"]
    assert {"failureReason", "counts", "rate", "etaSeconds"} <= set(schemas["Campaign"]["required"])
    # SPEC §10 delivery control: the paused state, its reason, the send options and four-eyes
    assert "paused" in schemas["CampaignStatus"]["enum"]
    assert {"pausedReason", "canary", "haltRule", "spreadMinutes", "approval"} <= set(schemas["Campaign"]["required"])
    assert {"canary", "haltRule", "spreadMinutes", "scheduledAt"} <= set(schemas["SendRequest"]["properties"])
    # SPEC §10 recipient time: sendAt {localTime, date, fallbackZone, passed}, the waves, the opt-outs
    assert {"sendAt", "ignoreQuietHours", "ignoreFrequencyCap", "waves", "nextWaveAt"} <= set(
        schemas["Campaign"]["required"])
    assert {"sendAt", "ignoreQuietHours", "ignoreFrequencyCap"} <= set(schemas["SendRequest"]["properties"])
    assert set(schemas["SendAt"]["properties"]) == {"localTime", "date", "fallbackZone", "passed"}
    assert schemas["SendAt"]["properties"]["passed"]["enum"] == ["next_day", "now"]
    assert schemas["SendRequest"]["properties"]["sendAt"]["oneOf"][0] == {"$ref": "#/components/schemas/SendAt"}
    assert set(schemas["CampaignCanary"]["required"]) == {"size", "percent", "holdMinutes", "state", "seed", "wave"}
    assert {"quietHours", "frequencyCap"} <= set(schemas["NotificationSend"]["properties"])
    assert {"/settings/quiet-hours", "/settings/frequency-caps"} <= set(document()["paths"])
    assert "lastError" in schemas["Recipient"]["required"]
    assert schemas["ListPage"]["required"] == ["items", "nextCursor"]
    assert {"accepted", "rejected", "imported", "errors", "warnings", "sample"} <= set(
        schemas["UploadResult"]["required"])


@pytest.mark.parametrize("role", ["support", "marketer", "admin"])
def test_document_is_served_to_every_role_with_a_key(client, api_key, role):
    response = client.get(f"{PREFIX}/openapi.json", headers={"Authorization": f"Bearer {api_key(role)}"})
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json() == document()
    assert list(response.get_json()["paths"])[:2] == list(document()["paths"])[:2]  # the file's order


def test_document_needs_a_key(client):
    response = client.get(f"{PREFIX}/openapi.json")
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "unauthorized"


def test_reference_page_needs_sign_in_and_is_linked_from_the_navigation(client, logged_in):
    assert client.get("/docs/api").status_code == 302
    assert client.get("/docs/api/openapi.json").status_code == 302
    logged_in("support")
    home = client.get("/").get_data(as_text=True)
    assert 'href="/docs/api"' in home
    page = client.get("/docs/api")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'data-spec-url="/docs/api/openapi.json"' in html
    assert "redoc" not in html.lower() or "<script>" not in html  # no inline script
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
    assert f'<meta property="csp-nonce" content="{nonce}">' in html
    assert client.get("/docs/api/openapi.json").get_json() == document()
