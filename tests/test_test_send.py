"""A draft's test send: through the campaign's channel and template, to a few chosen userIds or
emails, labelled "[Test]", never counted in the draft."""

import email as email_lib
import re

from sqlalchemy import select

from dashboard import queries
from dashboard.extensions import db
from dashboard.models import Campaign, Notification
from dashboard.services import campaigns, recipients
from dashboard.services.actor import Actor
from tests.conftest import csrf_from
from tests.engine import drain_until_idle
from tests.test_api_campaigns import make_template
from tests.test_channels import sink, smtp  # noqa: F401 (fixtures)

ACTOR = Actor.system("test")


def _draft(channel="in_app"):
    make_template()
    c = campaigns.create({"name": "Spring", "templateId": "promo", "channel": channel,
                          "variables": {"offer": "10% off"}}, ACTOR)
    recipients.bulk_upsert(c.id, [("u-1", {"firstName": "Ann"}, "ann@example.com"), ("u-2", {}, None)])
    recipients.recount(campaigns.get(c.id))
    db.session.commit()
    return c.id


def _api(client, api_key, path, body):
    return client.post(f"/api/v1{path}", json=body, headers={"Authorization": f"Bearer {api_key()}"})


def test_in_app_test_is_labelled_and_not_counted(client, api_key):
    cid = _draft()
    answer = _api(client, api_key, f"/campaigns/{cid}/test", {"targets": ["u-1", "ghost", "u-1"]})
    assert answer.status_code == 202, answer.get_json()
    assert answer.get_json()["targets"] == 2
    drain_until_idle()
    titles = dict(db.session.execute(select(Notification.user_id, Notification.title)).all())
    assert titles == {"u-1": "[Test] Hi Ann", "ghost": "[Test] Hi there"}  # ghost gets the defaults
    db.session.expire_all()
    draft = db.session.get(Campaign, cid)
    assert (draft.status, draft.total, draft.pending, draft.sent, draft.read_count) == ("draft", 2, 2, 0, 0)
    test = db.session.get(Campaign, answer.get_json()["testCampaignId"])
    assert (test.kind, test.status, test.sent) == ("test", "sent", 2)
    assert [c.id for c in queries.campaigns().items] == [cid]  # hidden from the campaigns list
    outcome = queries.latest_test(cid)
    assert outcome.finished and sorted(r.status for r in outcome.rows) == ["sent", "sent"]


def test_webhook_test_carries_the_flag(client, api_key, sink):  # noqa: F811
    cid = _draft("webhook")
    assert _api(client, api_key, f"/campaigns/{cid}/test", {"targets": ["u-2"]}).status_code == 202
    drain_until_idle()
    body = sink.requests[-1]["json"]
    assert body["test"] is True and body["title"] == "[Test] Hi there" and body["userId"] == "u-2"


def test_email_test_to_an_address(client, api_key, smtp):  # noqa: F811
    cid = _draft("email")
    assert _api(client, api_key, f"/campaigns/{cid}/test", {"targets": ["ann@example.com", "me@example.com"]}
                ).status_code == 202
    drain_until_idle()
    sent = {m["to"][0]: email_lib.message_from_string(m["data"] if isinstance(m["data"], str) else
                                                      m["data"].decode())["Subject"] for m in smtp.messages}
    assert sent == {"ann@example.com": "[Test] Hi Ann", "me@example.com": "[Test] Hi there"}


def test_refusals(client, api_key):
    cid = _draft()
    too_many = _api(client, api_key, f"/campaigns/{cid}/test", {"targets": [f"u-{i}" for i in range(11)]})
    assert too_many.status_code == 400 and "at most 10" in too_many.get_json()["error"]["message"]
    assert _api(client, api_key, f"/campaigns/{cid}/test", {"targets": ["bad id!"]}).status_code == 400
    assert _api(client, api_key, f"/campaigns/{cid}/test", {"targets": []}).status_code == 400
    campaigns.get(cid).status = "cancelled"
    db.session.commit()
    assert _api(client, api_key, f"/campaigns/{cid}/test", {"targets": ["u-1"]}).status_code == 409


def test_draft_page_sends_a_test_and_shows_the_outcome(client, logged_in):
    logged_in("marketer")
    cid = _draft()
    page = client.get(f"/campaigns/{cid}").get_data(as_text=True)
    assert "Send a test" in page
    answer = client.post(f"/campaigns/{cid}/test", data={"csrf_token": csrf_from(page), "targets": "u-1, x@y.io"},
                         headers={"HX-Request": "true"})
    html = answer.get_data(as_text=True)
    assert answer.status_code == 200 and "Last test: sending" in html and 'hx-trigger="every 1s"' in html
    drain_until_idle()
    done = client.get(f"/campaigns/{cid}/_test", headers={"HX-Request": "true", "HX-Trigger": "test-send"})
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", done.get_data(as_text=True)))
    assert done.status_code == 286 and "Last test: finished · 2 sent" in text
    bad = client.post(f"/campaigns/{cid}/test", data={"csrf_token": csrf_from(page), "targets": "bad id!"},
                      headers={"HX-Request": "true"})
    assert bad.status_code == 400 and "not a valid userId" in bad.get_data(as_text=True) \
        and "bad id!" in bad.get_data(as_text=True)
    assert "sent a test of campaign to 2 recipients" in client.get("/audit").get_data(as_text=True)
