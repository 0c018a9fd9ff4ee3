from dashboard.extensions import db
from dashboard.models import ApiKey
from dashboard.services import accounts
from dashboard.services.actor import Actor


def _auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_no_key_is_401_with_error_envelope(client):
    response = client.get("/api/v1/campaigns")
    assert response.status_code == 401
    body = response.get_json()
    assert body["error"]["code"] == "unauthorized"
    assert "Bearer" in body["error"]["message"]
    assert body["error"]["details"] == []


def test_malformed_and_unknown_keys_are_401(client, api_key):
    good = api_key("marketer")
    for header in ("Basic abc", "Bearer ", "Bearer hrld_00000000_nope", "Bearer " + good[:-2] + "xx", good):
        response = client.get("/api/v1/campaigns", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.get_json()["error"]["code"] == "unauthorized"


def test_valid_key_lists_campaigns(client, api_key):
    response = client.get("/api/v1/campaigns", headers=_auth(api_key("support")))
    assert response.status_code == 200
    assert response.get_json() == {"items": [], "nextCursor": None}


def test_session_cookie_does_not_authenticate_the_api(client, logged_in):
    logged_in("admin")
    assert client.get("/api/v1/campaigns").status_code == 401


def test_wrong_role_is_403(client, api_key):
    for role in ("marketer", "support"):
        response = client.get("/api/v1/accounts", headers=_auth(api_key(role)))
        assert response.status_code == 403
        assert response.get_json()["error"]["code"] == "forbidden"
    response = client.get("/api/v1/accounts", headers=_auth(api_key("admin")))
    assert response.status_code == 200
    assert len(response.get_json()["items"]) == 3


def test_me_reports_owner_and_role(client, make_account):
    owner = make_account("support")
    key, plain = accounts.create_api_key(owner, "probe", Actor.system("test"))
    body = client.get("/api/v1/me", headers=_auth(plain)).get_json()
    assert body["account"]["email"] == owner.email
    assert body["role"] == "support"
    assert body["keyPrefix"] == key.prefix


def test_keys_are_stored_hashed_only(make_account):
    owner = make_account("admin")
    key, plain = accounts.create_api_key(owner, "", Actor.system("test"))
    stored = db.session.get(ApiKey, key.id)
    assert plain not in (stored.key_hash, stored.prefix)
    assert len(stored.key_hash) == 64


def test_revoked_key_is_401(client, make_account):
    owner = make_account("marketer")
    key, plain = accounts.create_api_key(owner, "", Actor.system("test"))
    assert client.get("/api/v1/campaigns", headers=_auth(plain)).status_code == 200
    accounts.revoke_api_key(key.id, Actor.system("test"))
    response = client.get("/api/v1/campaigns", headers=_auth(plain))
    assert response.status_code == 401
    assert "revoked" in response.get_json()["error"]["message"]


def test_deactivated_owner_key_is_401(client, make_account):
    owner = make_account("marketer")
    _, plain = accounts.create_api_key(owner, "", Actor.system("test"))
    owner.active = False
    db.session.commit()
    assert client.get("/api/v1/campaigns", headers=_auth(plain)).status_code == 401


def test_unknown_api_path_is_json_404(client, api_key):
    response = client.get("/api/v1/nope", headers=_auth(api_key()))
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
