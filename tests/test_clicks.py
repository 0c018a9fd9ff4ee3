"""Email click tracking: links rewritten at send through the signed redirect, the redirect
itself (a tampered or foreign token is a 400 page, never a redirect), and counting (once per
recipient per link; the campaign's clicked_count once per recipient)."""

import email
import re

import pytest
from itsdangerous import URLSafeSerializer
from sqlalchemy import delete, func, select

from dashboard.extensions import db
from dashboard.models import Campaign, LinkClick, Recipient
from dashboard.services import campaigns, clicks, recipients, test_sends
from tests.engine import drain_until_idle
from tests.test_api_campaigns import make_template
from tests.test_channels import ACTOR, send_campaign, smtp  # noqa: F401  (the SMTP fixture)

PUBLIC = "http://localhost:5000"
TRACKED = re.compile(r"http://localhost:5000/c/[A-Za-z0-9_.\-]*[A-Za-z0-9_\-]")
HTML = ('<p>Hello <a href="https://shop.example/sale?a=1&amp;b=2">sale</a> '
        "<a href='http://blog.example/post'>blog</a> <a href=\"mailto:help@example.com\">mail</a> "
        '<a href="#top">top</a> <a href="/relative">rel</a></p>')
TEXT = "See https://shop.example/sale?a=1&b=2. Or write to mailto:help@example.com (or http://blog.example/post)."


def rich_template(template_id="linky"):
    make_template(template_id, channels={"email": {"subject": "Links", "text": TEXT, "html": HTML}}, schema=[])


def mails_by_to(box) -> dict:
    return {m["to"][0]: email.message_from_string(m["data"]) for m in box.messages}


def parts(mail) -> tuple[str, str]:
    text = html = ""
    for p in mail.walk():
        if p.get_content_type() == "text/plain":
            text = p.get_payload(decode=True).decode()
        elif p.get_content_type() == "text/html":
            html = p.get_payload(decode=True).decode()
    return text, html


def send_links(user_ids, track=True):
    rich_template()
    c = campaigns.create({"name": "Links", "templateId": "linky", "channel": "email", "trackClicks": track}, ACTOR)
    recipients.add_manual(c.id, user_ids, None, ACTOR)
    db.session.execute(Recipient.__table__.update().where(Recipient.campaign_id == c.id)
                       .values(email=Recipient.user_id + "@x.test"))
    db.session.commit()
    from dashboard.services import lifecycle
    lifecycle.send(c.id, None, ACTOR)
    drain_until_idle()
    return c


def clicked_count(campaign_id: int) -> int:
    db.session.expire_all()
    return db.session.get(Campaign, campaign_id).clicked_count


def path_of(url: str) -> str:
    assert url.startswith(PUBLIC + "/c/"), url
    return url[len(PUBLIC):]


# --- the rewrite -----------------------------------------------------------------------------------

def test_rewrite_html_keeps_mailto_anchors_relative_and_long_urls(app):
    long_url = "https://x.example/" + "a" * 2000
    out = clicks.rewrite_html(HTML + f'<a href="{long_url}">long</a>', 7)
    hrefs = re.findall(r"""href=["']([^"']*)["']""", out)
    assert hrefs[2:] == ["mailto:help@example.com", "#top", "/relative", long_url]
    first, second = (clicks.read_token(path_of(h.replace("&amp;", "&"))[3:]) for h in hrefs[:2])
    assert first == (7, "https://shop.example/sale?a=1&b=2")  # the entity is the URL's real "&"
    assert second == (7, "http://blog.example/post")
    assert "shop.example" not in out and "blog.example" not in out


def test_rewrite_text_urls_leave_punctuation_and_mailto(app):
    out = clicks.rewrite_text(TEXT, 3)
    urls = TRACKED.findall(out)
    assert [clicks.read_token(path_of(u)[3:]) for u in urls] == [(3, "https://shop.example/sale?a=1&b=2"),
                                                                  (3, "http://blog.example/post")]
    assert "mailto:help@example.com" in out
    assert re.search(r"/c/[A-Za-z0-9_.\-]+\. Or write", out)  # the sentence's full stop stays text
    assert re.search(r"/c/[A-Za-z0-9_.\-]+\)\.$", out)


def test_sent_email_links_are_tracked(smtp):  # noqa: F811
    c = send_links(["ann", "bob"])
    mails = mails_by_to(smtp)
    assert set(mails) == {"ann@x.test", "bob@x.test"}
    text, html = parts(mails["ann@x.test"])
    assert "shop.example" not in text + html and "blog.example" not in text + html
    assert "mailto:help@example.com" in html and 'href="#top"' in html and "mailto:help@example.com" in text
    ann = db.session.scalar(select(Recipient.id).where(Recipient.campaign_id == c.id, Recipient.user_id == "ann"))
    tokens = {clicks.read_token(path_of(u.replace("&amp;", "&"))[3:]) for u in TRACKED.findall(text + html)}
    assert tokens == {(ann, "https://shop.example/sale?a=1&b=2"), (ann, "http://blog.example/post")}


def test_track_clicks_off_sends_links_as_written(smtp):  # noqa: F811
    send_links(["ann"], track=False)
    text, html = parts(mails_by_to(smtp)["ann@x.test"])
    assert "/c/" not in text + html
    assert 'href="https://shop.example/sale?a=1&amp;b=2"' in html and "http://blog.example/post" in text


def test_test_sends_are_not_rewritten(smtp):  # noqa: F811
    rich_template()
    draft = campaigns.create({"name": "Links", "templateId": "linky", "channel": "email"}, ACTOR)
    test_sends.send(draft.id, ["qa@x.test"], ACTOR)
    drain_until_idle()
    text, html = parts(mails_by_to(smtp)["qa@x.test"])
    assert "/c/" not in text + html and "https://shop.example/sale" in html


# --- the redirect and counting ------------------------------------------------------------------------

def test_click_redirects_and_counts_once_per_recipient_per_link(client, smtp):  # noqa: F811
    c = send_links(["ann", "bob"])
    links = {}
    for to, mail in mails_by_to(smtp).items():
        text, _ = parts(mail)
        links[to] = TRACKED.findall(text)
    shop, blog = links["ann@x.test"]
    for _ in range(2):
        response = client.get(path_of(shop))
        assert response.status_code == 302
        assert response.headers["Location"] == "https://shop.example/sale?a=1&b=2"
    assert clicked_count(c.id) == 1
    assert client.get(path_of(blog)).headers["Location"] == "http://blog.example/post"
    assert clicked_count(c.id) == 1  # a second link of the same person: still one clicker
    assert db.session.scalar(select(func.count()).select_from(LinkClick).where(LinkClick.campaign_id == c.id)) == 2
    client.get(path_of(links["bob@x.test"][0]))
    assert clicked_count(c.id) == 2
    rows = db.session.execute(select(LinkClick.user_id, LinkClick.url).order_by(LinkClick.id)).all()
    assert [tuple(r) for r in rows] == [("ann", "https://shop.example/sale?a=1&b=2"),
                                        ("ann", "http://blog.example/post"),
                                        ("bob", "https://shop.example/sale?a=1&b=2")]


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # signature changed
    lambda t: t[:10],  # cut short
    lambda t: "x" + t,
])
def test_tampered_token_is_a_400_page_not_a_redirect(client, mangle):
    token = clicks.token(1, "https://shop.example/")
    response = client.get(f"/c/{mangle(token)}")
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "This link is broken" in response.get_data(as_text=True)


def test_a_foreign_url_cannot_be_signed_without_the_key(client):
    """Someone who knows the format but not SECRET_KEY cannot make Herald redirect to their host."""
    forged = URLSafeSerializer("not-the-secret", salt="herald-click").dumps([1, "https://evil.example/"])
    other_salt = URLSafeSerializer(client.application.config["SECRET_KEY"], salt="other").dumps(
        [1, "https://evil.example/"])
    for token in (forged, other_salt):
        response = client.get(f"/c/{token}")
        assert response.status_code == 400 and "Location" not in response.headers
    assert "evil.example" not in response.get_data(as_text=True)
    # even a correctly signed token is refused when it does not hold an http(s) URL
    signed = URLSafeSerializer(client.application.config["SECRET_KEY"], salt="herald-click")
    for payload in ([1, "javascript:alert(1)"], [1, "//evil.example"], ["1", "https://ok.example"], {"u": 1}):
        response = client.get(f"/c/{signed.dumps(payload)}")
        assert response.status_code == 400 and "Location" not in response.headers


def test_recipient_gone_still_redirects_and_records_nothing(client, smtp):  # noqa: F811
    c = send_links(["ann"])
    url = TRACKED.findall(parts(mails_by_to(smtp)["ann@x.test"])[0])[0]
    db.session.execute(delete(Recipient).where(Recipient.campaign_id == c.id))
    db.session.commit()
    response = client.get(path_of(url))
    assert response.status_code == 302 and response.headers["Location"] == "https://shop.example/sale?a=1&b=2"
    assert db.session.scalar(select(func.count()).select_from(LinkClick)) == 0
    assert clicked_count(c.id) == 0


def test_click_route_needs_no_login(client, smtp):  # noqa: F811
    send_links(["ann"])
    url = TRACKED.findall(parts(mails_by_to(smtp)["ann@x.test"])[0])[0]
    with client.session_transaction() as s:
        s.clear()
    assert client.get(path_of(url)).status_code == 302


# --- the campaign option -----------------------------------------------------------------------------

def test_track_clicks_option_in_the_api(api):
    rich_template()
    created = api("POST", "/campaigns", {"name": "L", "templateId": "linky", "channel": "email"})
    assert created.status_code == 201 and created.get_json()["trackClicks"] is True
    cid = created.get_json()["id"]
    off = api("PATCH", f"/campaigns/{cid}", {"trackClicks": False})
    assert off.status_code == 200 and off.get_json()["trackClicks"] is False
    assert api("GET", f"/campaigns/{cid}").get_json()["trackClicks"] is False
    bad = api("PATCH", f"/campaigns/{cid}", {"trackClicks": "no", "name": "Renamed"})
    assert bad.status_code == 400
    assert bad.get_json()["error"]["details"][0]["field"] == "trackClicks"
    assert api("GET", f"/campaigns/{cid}").get_json()["name"] == "L"  # nothing half-done
    assert api("POST", "/campaigns", {"name": "M", "templateId": "linky", "channel": "email",
                                      "trackClicks": 0}).status_code == 400
