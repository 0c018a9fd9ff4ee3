"""The security sweep: every registered route × (anonymous, support, marketer, admin) against
one explicit table; CSRF on every state-changing dashboard route; XSS probes on every page."""

import re

import pytest

from dashboard.extensions import db
from dashboard.models import ApiKey, Notification
from dashboard.services import accounts, campaigns, lifecycle, recipients, segments, templates, users
from dashboard.services import lists as user_lists
from dashboard.services.actor import Actor
from tests.conftest import PASSWORD, csrf_from, login
from tests.engine import drain

A, M, S = "admin", "marketer", "support"
ALL, WRITE, ADMIN = {A, M, S}, {A, M}, {A}
TOKEN = "user token"  # /inbox/v1: an end user's signed token, never an account's session or API key
ACTOR = Actor.system("test")

# Who may use each endpoint, written out from SPEC §7/§8 (not read from the code under test).
EXPECTED = {
    "auth.login": "public", "health.healthz": "public", "auth.logout": ALL, "home.index": ALL,
    "admin.account_list": ADMIN, "admin.account_create": ADMIN, "admin.account_role": ADMIN,
    "admin.account_active": ADMIN, "admin.api_keys": ADMIN, "admin.api_key_create": ADMIN,
    "admin.api_key_revoke": ADMIN, "admin.workspace_settings": ADMIN, "admin.workspace_save": ADMIN,
    "admin.quiet_hours_save": ADMIN, "admin.frequency_caps_save": ADMIN,
    "channels.index": ADMIN, "channels.update": ADMIN, "channels.send_test": ADMIN,
    "api.account_list": ADMIN, "api.channel_read": ADMIN, "api.channel_update": ADMIN, "api.channel_list": ALL,
    "api.me": ALL, "api.campaign_list": ALL, "api.campaign_read": ALL, "api.recipients_list": ALL,
    "api.recipients_export": ALL, "api.template_list": ALL, "api.template_read": ALL, "api.template_version": ALL,
    "api.user_read": ALL, "api.feed": ALL,
    "api.campaign_create": WRITE, "api.campaign_edit": WRITE, "api.campaign_delete": WRITE,
    "api.campaign_send": WRITE, "api.campaign_test": WRITE, "api.campaign_unschedule": WRITE,
    "api.campaign_cancel": WRITE, "api.campaign_pause": WRITE, "api.campaign_resume": WRITE,
    "api.campaign_approve_send": WRITE, "api.four_eyes_read": ADMIN, "api.four_eyes_update": ADMIN,
    "api.quiet_hours_read": ADMIN, "api.quiet_hours_update": ADMIN, "api.frequency_caps_read": ADMIN,
    "api.frequency_caps_update": ADMIN,
    "api.campaign_duplicate": WRITE, "api.campaign_retry_failed": WRITE, "api.recipients_add": WRITE,
    "api.recipients_clear": WRITE, "api.recipients_upload": WRITE, "api.template_create": WRITE,
    "api.template_edit": WRITE, "api.template_approve": WRITE, "api.template_archive": WRITE,
    "api.users_upsert": WRITE, "api.notification_send": WRITE, "api.feed_mark": WRITE,
    "campaigns.index": ALL, "campaigns.show": ALL, "campaigns.engagement": ALL, "campaigns.preview_as": ALL,
    "campaigns.recipients_table": ALL, "campaigns.export": ALL, "campaigns.test_send": WRITE,
    "campaigns.test_send_status": WRITE,
    "live.status": ALL, "campaigns.create": WRITE, "campaigns.edit": WRITE, "campaigns.defaults_fields": WRITE,
    "campaigns.delete": WRITE, "campaigns.add_recipients": WRITE, "campaigns.clear_recipients": WRITE,
    "campaigns.upload": WRITE, "campaigns.confirm_upload": WRITE, "campaigns.rejected_rows": WRITE,
    "live.send": WRITE, "live.unschedule": WRITE, "live.cancel": WRITE, "live.duplicate": WRITE,
    "live.retry_failed": WRITE, "live.pause": WRITE, "live.resume": WRITE, "live.approve_send": WRITE,
    "live.spread": WRITE,
    "templates.index": ALL, "templates.show": ALL, "templates.create": WRITE, "templates.edit": WRITE,
    "templates.transition": WRITE, "templates.preview": WRITE, "templates.schema_rows": WRITE,
    "support.lookup": ALL, "support.users_index": ALL, "support.user_view": ALL, "support.notification_log": ALL,
    "support.audit_log": ALL, "support.users_import": WRITE,
    "api.attributes_index": ALL, "support.users_import_review": WRITE, "support.users_import_types": WRITE,
    "support.users_import_confirm": WRITE, "support.user_attribute_set": WRITE, "support.user_attribute_remove": WRITE,
    "api.openapi_document": ALL, "docs.api_reference": ALL, "docs.api_document": ALL,
    "api.channel_rotate_secret": ADMIN, "channels.rotate_secret": ADMIN,
    "account.preferences": ALL, "account.set_timezone": ALL,
    "ops.metrics_page": ADMIN, "ops.queues": ADMIN, "ops.requeue_job": ADMIN, "ops.delete_job": ADMIN,
    "lists.index": ALL, "lists.show": ALL, "lists.create": WRITE, "lists.edit": WRITE, "lists.delete": WRITE,
    "lists.add_members": WRITE, "lists.remove_members": WRITE, "lists.upload": WRITE, "lists.confirm_upload": WRITE,
    "lists.rejected_rows": WRITE, "lists.save_campaign": WRITE,
    "reports.report_section": ALL, "reports.engagement_csv": ALL, "clicks.follow": "public",
    "api.campaign_report": ALL, "api.campaign_engagement_csv": ALL,
    "api.list_index": ALL, "api.list_read": ALL, "api.list_members": ALL, "api.list_create": WRITE,
    "api.list_edit": WRITE, "api.list_delete": WRITE, "api.list_members_add": WRITE,
    "api.list_members_remove": WRITE, "api.list_import": WRITE, "api.campaign_save_as_list": WRITE,
    "segments.index": ALL,
    "segments.count": ALL, "segments.new": WRITE, "segments.create": WRITE, "segments.edit": WRITE,
    "segments.update": WRITE, "segments.builder": WRITE, "segments.count_preview": WRITE,
    "segments.confirm_delete": WRITE, "segments.delete": WRITE,
    "api.segment_list": ALL, "api.segment_read": ALL, "api.segment_count": ALL, "api.segment_preview_count": WRITE,
    "api.segment_create": WRITE, "api.segment_edit": WRITE, "api.segment_delete": WRITE,
    "api.campaign_audience_freeze": WRITE, "campaigns.audience_set": WRITE, "campaigns.audience_freeze": WRITE,
    "campaigns.audience_count": WRITE,
    "admin.inbox_settings": ADMIN, "admin.inbox_origins_save": ADMIN, "admin.inbox_rotate": ADMIN,
    "api.inbox_token": WRITE, "api.inbox_settings_read": ADMIN, "api.inbox_settings_update": ADMIN,
    "api.inbox_settings_rotate": ADMIN, "inbox.widget": "public", "inbox.notifications_index": TOKEN,
    "inbox.unread_count": TOKEN, "inbox.notification_mark": TOKEN, "inbox.notifications_read_all": TOKEN,
    "inbox.stream": TOKEN,
}
# Not a page for people: a scraper without the bearer token (or an admin session) gets 401, no redirect.
ANONYMOUS = {"ops.metrics_page": 401}
XSS = ['<script>alert(1)</script>', '"><img src=x onerror=alert(1)>']


def test_every_route_is_in_the_table(app):
    endpoints = {r.endpoint for r in app.url_map.iter_rules() if r.endpoint != "static"}
    assert endpoints == set(EXPECTED), (endpoints - set(EXPECTED), set(EXPECTED) - endpoints)


@pytest.fixture
def world(app):
    """Real objects so every GET can answer 200; writes use ids that do not exist (no side effects)."""
    templates.create({"name": "T " + XSS[1], "templateId": "t", "category": XSS[0], "tags": [XSS[1]],
                      "channels": {"in_app": {"title": XSS[0] + " {{ name }}", "body": XSS[1]}},
                      "variableSchema": [{"key": "name", "type": "string", "label": XSS[1]}]}, ACTOR)
    templates.transition("t", "approve", ACTOR)
    c = campaigns.create({"name": "C " + XSS[0], "templateId": "t", "variables": {"name": XSS[1]}}, ACTOR)
    recipients.add_manual(c.id, ["u1", "u2"], {"u1": {"name": XSS[0]}}, ACTOR)
    lifecycle.send(c.id, None, ACTOR)
    drain()
    users.upsert([{"userId": "u1", "name": XSS[1], "email": "u1@example.com"}])
    note = db.session.query(Notification).filter_by(user_id="u1").first()
    clients = {}
    for role in (A, M, S):
        account = accounts.create_account(f"{role}@sweep.test", role, PASSWORD, ACTOR)
        _, key = accounts.create_api_key(account, XSS[0], ACTOR)
        client = app.test_client()
        assert login(client, account.email).status_code == 302
        clients[role] = (client, key, csrf_from(client.get("/").get_data(as_text=True)))
    key_id = db.session.query(ApiKey.id).first()[0]
    draft = campaigns.create({"name": "Draft " + XSS[1], "templateId": "t"}, ACTOR)
    segment = segments.create({"name": "S " + XSS[1], "description": XSS[0], "definition": {"conditions": [
        {"type": "campaign", "event": "received", "campaignId": c.id}]}}, ACTOR)
    user_list = user_lists.create("L " + XSS[0], XSS[1], ACTOR, ["u1", "not-in-directory"])
    return {"list": user_list.id, "campaign": c.id, "draft": draft.id, "template": "t", "user": "u1", "note": note.id,
            "account": 1,
            "key": key_id, "segment": segment.id, "clients": clients, "anon": app.test_client()}


def _url(rule, w, real: bool) -> str:
    campaign = w["draft"] if rule.endpoint == "campaigns.edit" else w["campaign"]
    values = {"campaign_id": campaign if real else 999999, "template_id": w["template"] if real else "nope",
              "user_id": w["user"], "notification_id": w["note"] if real else 999999, "version": 1,
              "account_id": 999999, "key_id": 999999, "kind": "webhook", "token": "no-such-token",
              "action": None, "what": "read", "job_id": "no-such-job",
              "segment_id": w["segment"] if real else 999999, "list_id": w["list"] if real else 999999}
    url = rule.rule
    for name in rule.arguments:
        value = values[name]
        if value is None:
            value = "approve" if "approve" in url else "activate"
        url = re.sub(rf"<(?:[^:<>]+:)?{name}>|<any\([^)]*\):{name}>", str(value), url)
    return url


def test_route_role_matrix(app, world):
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("static", "auth.logout"):
            continue
        expected = EXPECTED[rule.endpoint]
        api = rule.endpoint.startswith("api.")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            write = method != "GET"
            url = _url(rule, world, real=not write)
            # anonymous
            response = world["anon"].open(url, method=method, json={} if api else None)
            if expected == TOKEN:  # no account may use it, with a session or with a key
                codes = {response.status_code}
                for role in (A, M, S):
                    client, key, _ = world["clients"][role]
                    codes.add(client.open(url, method=method).status_code)
                    codes.add(client.open(url, method=method, headers={"Authorization": f"Bearer {key}"}).status_code)
                assert codes == {401}, (method, url, codes)
                checked += 1
                continue
            if expected == "public":
                assert response.status_code in (200, 400), (method, url, response.status_code)
                checked += 1
                continue
            want = 401 if api else (400 if write else 302)  # an anonymous web POST fails CSRF first
            want = ANONYMOUS.get(rule.endpoint, want)
            assert response.status_code == want, ("anonymous", method, url, response.status_code)
            checked += 1
            for role in (A, M, S):
                client, key, token = world["clients"][role]
                if api:
                    response = client.open(url, method=method, json={}, headers={"Authorization": f"Bearer {key}"})
                else:
                    response = client.open(url, method=method, data={"csrf_token": token} if write else None)
                code = response.status_code
                if role in expected:
                    if write:
                        assert code not in (401, 403), (role, method, url, code)
                    else:  # the one GET on a made-up id: an unknown upload token
                        unknown = ("campaigns.rejected_rows", "lists.rejected_rows", "support.users_import_review",
                                   "support.users_import_types")
                        assert code == (404 if rule.endpoint in unknown else 200), \
                            (role, method, url, code)
                else:
                    assert code == 403, (role, method, url, code)
                checked += 1
    assert checked >= 300, checked
    print(f"route x role checks: {checked}")


def test_csrf_required_on_every_dashboard_write(app, world):
    client, _, _ = world["clients"][A]
    count = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith(("api.", "inbox.")) or not (rule.methods & {"POST", "PUT", "PATCH", "DELETE"}):
            continue  # a bearer key or user token, never a cookie: nothing to forge
        url = _url(rule, world, real=False)
        for headers in ({}, {"HX-Request": "true"}):
            response = client.post(url, data={}, headers=headers)
            assert response.status_code == 400, (url, response.status_code)
            assert "security token" in response.get_data(as_text=True)
            count += 1
    assert count >= 50


def test_no_page_shows_user_text_unescaped(app, world):
    client, key, _ = world["clients"][A]
    pages = 0
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint in ("static",) or rule.endpoint.startswith("api."):
            continue
        url = _url(rule, world, real=True)
        for headers in ({}, {"HX-Request": "true"}):
            response = client.get(url, headers=headers)
            if not response.content_type.startswith("text/html"):
                continue  # CSV downloads carry the data as-is (formula cells neutralised)
            body = response.get_data(as_text=True)
            for probe in XSS:
                assert probe not in body, (url, probe)
            pages += 1
    assert pages >= 40


def test_security_headers_on_every_kind_of_response(client, world):
    c, key, _ = world["clients"][M]
    responses = [c.get("/"), c.get("/campaigns/1/_status", headers={"HX-Request": "true"}), c.get("/nope"),
                 client.get("/login"), client.get("/api/v1/campaigns"), client.get("/healthz"),
                 client.get("/static/css/app.css")]
    for response in responses:
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"
