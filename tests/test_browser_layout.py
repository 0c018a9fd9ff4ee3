"""Phone layout: at 390 x 844 no dashboard page scrolls sideways (every GET page of the route
table, as each role that may open it, on real objects); the menu folds behind a button; tables
become stacked cards."""

import pytest
from playwright.sync_api import expect

from tests.browser_pages import (
    ROLES,
    SHOTS,
    open_page,
    page_urls,
    shot_name,
    sign_in,
    sweep_fixture,  # noqa: F401 (the fixture "sweep")
)
from tests.test_security import world  # noqa: F401 (fixture)

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone(browser):
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    yield page
    context.close()


def _overflow(page) -> dict:
    return page.evaluate("""() => {
      const width = window.innerWidth, wide = [];
      if (document.documentElement.scrollWidth > width) {
        for (const el of document.querySelectorAll('body *')) {
          const r = el.getBoundingClientRect();
          if (r.right > width + 1 && r.width > 0 && !el.closest('.table-wrap, .scroll-x'))
            wide.push(el.tagName.toLowerCase() + (el.className ? '.' + String(el.className).split(' ').join('.') : '')
                      + ' right=' + Math.round(r.right));
        }
      }
      return {scroll: document.documentElement.scrollWidth, inner: width, wide: wide.slice(0, 8)};
    }""")


@pytest.mark.parametrize("role", (None, *ROLES))
def test_no_page_scrolls_sideways_on_a_phone(app, phone, live_server, sweep, role):
    if role is not None:
        sign_in(phone, live_server, role)
    shots = SHOTS / "390" / (role or "anonymous")
    shots.mkdir(parents=True, exist_ok=True)
    seen, failures = 0, []
    for path in page_urls(app, sweep, role):
        url = live_server + path
        if not open_page(phone, url):
            continue
        seen += 1
        phone.screenshot(path=str(shots / f"{shot_name(url, live_server)}.png"), full_page=True)
        result = _overflow(phone)
        if result["scroll"] > result["inner"]:
            failures.append((path, result))
    assert not failures, failures
    assert seen >= (1 if role is None else 15), seen


def test_phone_menu_folds_behind_a_button(phone, live_server, sweep):
    sign_in(phone, live_server, "admin")
    nav = phone.get_by_role("navigation", name="Main")
    expect(nav).to_be_hidden()
    menu = phone.locator("summary", has_text="Menu")
    header = phone.locator("header.topbar").bounding_box()
    assert header["height"] < 80, header
    menu.click()
    expect(nav).to_be_visible()
    SHOTS.mkdir(parents=True, exist_ok=True)
    phone.screenshot(path=str(SHOTS / "phone-menu-open.png"))
    nav.get_by_role("link", name="Campaigns").click()
    expect(phone.get_by_role("heading", name="Campaigns", exact=True)).to_be_visible()
    expect(phone.get_by_role("navigation", name="Main")).to_be_hidden()  # a new page starts folded


def test_menu_is_a_plain_row_on_a_desktop(page, live_server, sweep):
    sign_in(page, live_server, "marketer")
    expect(page.locator("summary", has_text="Menu")).to_be_hidden()
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Templates")).to_be_visible()
    assert page.locator("header.topbar").bounding_box()["height"] < 70


def test_tables_become_cards_on_a_phone(phone, live_server, sweep):
    sign_in(phone, live_server, "marketer")
    phone.goto(f"{live_server}/campaigns")
    row = phone.locator("table tbody tr").filter(has_text="Black Friday").first
    expect(row).to_be_visible()
    # every cell on its own line, named by its column; the status is on screen, not off to the right
    status = row.locator("td[data-label='Status']")
    expect(status).to_be_visible()
    box = status.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    name_box, row_box = row.locator("td").first.bounding_box(), row.bounding_box()
    assert name_box["width"] > 0.85 * row_box["width"], (name_box, row_box)  # the name gets the card's width
    assert name_box["height"] < 80, name_box  # two or three lines, not five
    head = phone.locator("table thead").first.bounding_box()
    assert head["height"] <= 1, head  # column names live on in each cell's label (and for screen readers)
    expect(phone.locator("table").first).to_have_attribute("role", "table")
