"""The campaign page's recipients table: numbered pages, N from the counters, filters in the URL,
search by userId prefix or email, one column per template variable."""

import re

from playwright.sync_api import expect

from dashboard.services import campaigns, recipients
from dashboard.services.actor import Actor
from tests.test_api_campaigns import make_template
from tests.test_browser import _sign_in

SYSTEM = Actor.system("test")


def _campaign(n=120):
    make_template()
    c = campaigns.create({"name": "Big list", "templateId": "promo", "channel": "in_app", "deliveryMode": "batch",
                          "variables": {"offer": "20% off"}}, SYSTEM)
    rows = [(f"u-{i:03d}", {"firstName": f"Name{i}"} if i % 2 else {}, f"person{i}@Example.com" if i % 3 == 0 else None)
            for i in range(1, n + 1)]
    recipients.bulk_upsert(c.id, rows)
    recipients.recount(campaigns.get(c.id))
    from dashboard.extensions import db
    db.session.commit()
    return c.id


def _text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)))


def test_pages_show_their_range_and_links(client, logged_in):
    logged_in("support")
    cid = _campaign()
    first = client.get(f"/campaigns/{cid}")
    assert "1–50 of 120 recipients" in _text(first)
    html = first.get_data(as_text=True)
    assert 'rel="next"' in html and "Previous" in html
    nxt = re.search(r'rel="next"\s+href="([^"]+)"', html).group(1).replace("&amp;", "&")
    second = client.get(nxt)
    assert "51–100 of 120 recipients" in _text(second) and "u-051" in _text(second) and "u-050" not in _text(second)
    prev = re.search(r'rel="prev"\s+href="([^"]+)"', second.get_data(as_text=True)).group(1).replace("&amp;", "&")
    assert "1–50 of 120" in _text(client.get(prev))
    third = client.get(f"/campaigns/{cid}?page=3")
    assert "101–120 of 120 recipients" in _text(third) and "u-120" in _text(third)


def test_status_filter_counts_from_the_counters(client, logged_in):
    logged_in("support")
    cid = _campaign()
    assert "1–50 of 120 pending recipients" in _text(client.get(f"/campaigns/{cid}?status=pending"))
    assert "No recipients match" in _text(client.get(f"/campaigns/{cid}?status=sent"))


def test_search_by_user_id_prefix_or_email(client, logged_in):
    logged_in("support")
    cid = _campaign()
    by_id = _text(client.get(f"/campaigns/{cid}/_recipients?q=u-11"))
    assert "1–10 of 10 recipients matching “u-11”" in by_id  # u-110..u-119
    by_email = _text(client.get(f"/campaigns/{cid}/_recipients?q=PERSON9@example"))
    assert "u-009" in by_email and "1–1 of 1 recipient " in by_email  # case-insensitive email prefix
    assert "1–5 of 5" in _text(client.get(f"/campaigns/{cid}/_recipients?q=person9"))  # 9, 90, 93, 96, 99
    assert "No recipients match" in _text(client.get(f"/campaigns/{cid}/_recipients?q=u-1_"))  # _ is literal


def test_one_column_per_variable_with_defaults_marked(client, logged_in):
    logged_in("support")
    cid = _campaign(4)
    html = client.get(f"/campaigns/{cid}").get_data(as_text=True)
    heads = re.findall(r'<th scope="col"[^>]*>([^<]+)</th>', html)
    assert ["firstName", "offer", "banner", "cta"] == [h for h in heads if h in ("firstName", "offer", "banner", "cta")]
    assert "Name1" in html and "firstName=" not in html
    assert '<span class="muted" title="campaign default">there</span>' in html  # u-002 has no firstName
    assert '<span class="muted" title="campaign default">20% off</span>' in html


def test_htmx_answer_pushes_the_page_url_but_not_for_live_refresh(client, logged_in):
    logged_in("support")
    cid = _campaign()
    answer = client.get(f"/campaigns/{cid}/_recipients?status=pending&page=2", headers={"HX-Request": "true"})
    assert answer.headers["HX-Push-Url"] == f"/campaigns/{cid}?status=pending&page=2"
    live = client.get(f"/campaigns/{cid}/_recipients?page=2",
                      headers={"HX-Request": "true", "HX-Trigger": "recipients-table"})
    assert "HX-Push-Url" not in live.headers


def test_browser_pages_and_back_button(page, live_server, make_account):
    cid = _campaign()
    account = make_account("marketer")
    _sign_in(page, live_server, account.email)
    page.goto(f"{live_server}/campaigns/{cid}")
    table = page.locator("#recipients-table")
    expect(table).to_contain_text("1–50 of 120 recipients")
    table.get_by_role("link", name="Next →").click()
    expect(table).to_contain_text("51–100 of 120 recipients")
    expect(page).to_have_url(re.compile(r"page=2"))
    table.get_by_role("link", name="3", exact=True).click()
    expect(table).to_contain_text("101–120 of 120 recipients")
    page.go_back()
    expect(page.locator("#recipients-table")).to_contain_text("51–100 of 120 recipients")
    page.get_by_label("Search recipients by user ID or email").fill("person3@")
    page.get_by_role("button", name="Search").last.click()
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"q=person3"))
    page.reload()
    expect(page.locator("#recipients-table tbody tr")).to_have_count(1)
