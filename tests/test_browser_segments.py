"""Headless Chromium: from the empty Segments page, build a two-condition segment (a number
attribute, then list membership), watch the live count change as the filter changes, see a
row's error while it is incomplete, save it, and find it on the index with its count. The page
never scrolls sideways at 390 px. Screenshots (1280 and 390 px) go to $HERALD_SEGMENT_SHOTS
(default /tmp/shots/segments)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import expect
from sqlalchemy import select

from dashboard.extensions import db
from dashboard.models import ListMember, Segment, User, UserAttribute, UserList
from tests.test_browser import _sign_in

SHOTS = Path(os.environ.get("HERALD_SEGMENT_SHOTS", "/tmp/shots/segments"))
WIDE, PHONE = {"width": 1280, "height": 900}, {"width": 390, "height": 844}


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(150)
    page.screenshot(path=str(SHOTS / f"{name}-390.png"), full_page=True)
    sideways = page.evaluate("() => document.documentElement.scrollWidth > window.innerWidth")
    page.set_viewport_size(WIDE)
    page.wait_for_timeout(150)
    page.screenshot(path=str(SHOTS / f"{name}-1280.png"), full_page=True)
    assert not sideways, f"{name} scrolls sideways at 390 px"


def directory() -> int:
    db.session.add_all([UserAttribute(name="age", type="number"), UserAttribute(name="plan", type="string"),
                        UserAttribute(name="signup", type="date")])
    for i in range(1, 41):  # ages 21..60
        db.session.add(User(user_id=f"b-{i:02d}", attributes={"age": 20 + i, "plan": "pro" if i % 2 else "free"}))
    vip = UserList(name="VIP customers", size=10)
    db.session.add(vip)
    db.session.flush()
    db.session.add_all([ListMember(list_id=vip.id, user_id=f"b-{i:02d}") for i in range(31, 41)])  # ages 51..60
    db.session.commit()
    return vip.id


@contextmanager
def redrawn(page):
    """Wait for the builder's HTMX redraw that the action inside starts (typing into a row before
    it is redrawn would type into the input being replaced)."""
    with page.expect_response(lambda r: r.url.endswith("/audiences/segments/builder")):
        yield
    page.wait_for_timeout(150)  # swap and settle


def test_build_a_segment_with_a_live_count(page, live_server, make_account):
    directory()
    marketer = make_account("marketer")
    _sign_in(page, live_server, marketer.email)
    page.get_by_role("link", name="Audiences").first.click()
    expect(page.get_by_text("No segments yet.")).to_be_visible()
    shot(page, "1-empty")
    page.get_by_role("link", name="New segment").click()
    expect(page.get_by_role("heading", name="New segment")).to_be_visible()
    page.get_by_label("Name").fill("Older VIPs")
    page.get_by_label("Description").fill("50+ and on the VIP list")

    # A new segment has no conditions yet: everyone, and it says how to narrow it.
    expect(page.locator("#segment-count")).to_contain_text("All 40 users — add a condition to narrow it")
    expect(page.locator("#row-0")).to_have_count(0)
    shot(page, "1b-new")

    # Row 0: an attribute row asks for its value (no error yet); pick age, "≥", type 50: the count
    # follows the typing.
    with redrawn(page):
        page.locator(".sb-add").last.get_by_role("button", name="Attribute", exact=True).click()
    row = page.locator("#row-0")
    expect(page.locator("#row-err-0")).to_have_text("Enter a value to count")
    expect(page.locator("#segment-count")).to_contain_text("Enter a value to count the users who match.")
    shot(page, "1c-first-row")
    expect(row.get_by_label("Attribute")).to_have_value("age")  # the first attribute: the row has its operators
    expect(row.get_by_label("Operator")).to_contain_text("≥")
    with redrawn(page):  # ... and for the operator (its value input)
        row.get_by_label("Operator").select_option(label="≥")
    expect(row.get_by_label("Value")).to_have_attribute("type", "number")
    row.get_by_label("Value").press_sequentially("50", delay=40)
    expect(page.locator("#segment-count")).to_contain_text("11 of 40 users match", timeout=10_000)

    # Row 1: "In list" — incomplete until a list is chosen, and it says so next to the row.
    page.locator(".sb-add").last.get_by_role("button", name="List", exact=True).click()
    list_row = page.locator("#row-1")
    expect(list_row.get_by_label("List")).to_be_visible()
    expect(page.locator("#row-err-1")).to_have_text("Pick a list", timeout=10_000)
    expect(page.locator("#segment-count")).to_contain_text("Finish the highlighted condition")
    list_row.get_by_label("List").select_option(label="VIP customers (10)")
    expect(page.locator("#segment-count")).to_contain_text("10 of 40 users match", timeout=10_000)
    expect(page.locator("#row-err-1")).to_be_empty()
    assert row.get_by_label("Value").input_value() == "50"  # the first row kept its value
    shot(page, "2-builder")

    # Match any instead of all: the count widens.
    page.get_by_label("Users who match").select_option("any")
    expect(page.locator("#segment-count")).to_contain_text("11 of 40 users match", timeout=10_000)
    page.get_by_label("Users who match").select_option("all")
    expect(page.locator("#segment-count")).to_contain_text("10 of 40 users match", timeout=10_000)

    page.get_by_role("button", name="Save segment").click()
    expect(page.get_by_text("Segment “Older VIPs” saved: 10 users match it now.")).to_be_visible()
    table_row = page.locator("tr", has_text="Older VIPs")
    expect(table_row.locator(".segs-count")).to_have_text("10", timeout=10_000)  # the lazy count
    expect(table_row).to_contain_text('age ≥ 50 and in list "VIP customers"')
    shot(page, "3-index")

    segment = db.session.scalars(select(Segment).where(Segment.name == "Older VIPs")).one()
    assert segment.description == "50+ and on the VIP list"
    assert segment.definition["conditions"][0] == {"type": "attribute", "attribute": "age", "operator": "gte",
                                                   "value": 50}
    assert segment.definition["conditions"][1]["type"] == "list"

    # A group, then the confirmation page of Delete.
    page.get_by_role("link", name="Edit").click()
    page.get_by_role("button", name="Group (any / all of…)").click()
    expect(page.locator("fieldset.sb-group")).to_be_visible()
    shot(page, "4-builder-group")
    page.goto(f"{live_server}/audiences/segments")
    page.get_by_role("link", name="Delete").click()
    expect(page.get_by_role("heading", name="Delete segment “Older VIPs”?")).to_be_visible()
    shot(page, "5-delete-confirm")
    page.get_by_role("button", name="Delete segment").click()
    expect(page.get_by_text("Segment “Older VIPs” deleted.")).to_be_visible()
    db.session.expire_all()
    assert db.session.scalars(select(Segment)).all() == []


def test_builder_with_a_slow_server(page, live_server, make_account):
    """Redraws held back (a slow server): a count never cancels one, text typed during one is
    kept (in the row it belongs to after a removal renumbers the rows), and Tab onto a row's
    Remove counts with that row still in."""
    directory()
    _sign_in(page, live_server, make_account("marketer").email)
    page.goto(f"{live_server}/audiences/segments/new")
    with redrawn(page):
        page.locator(".sb-add").last.get_by_role("button", name="Attribute", exact=True).click()
    row = page.locator("#row-0")
    with redrawn(page):
        row.get_by_label("Operator").select_option(label="≥")
    held = []

    def keep(route):
        held.append(route)

    def hold(action):
        page.route("**/audiences/segments/builder", keep)
        action()
        for _ in range(50):
            if held:
                break
            page.wait_for_timeout(100)
        assert len(held) == 1

    def release():
        page.wait_for_timeout(900)  # the count the blur or the typing asks for is due by now
        with page.expect_response(lambda r: r.url.endswith("/audiences/segments/builder")):
            held.pop().continue_()
        page.unroute("**/audiences/segments/builder", keep)
        page.wait_for_timeout(300)

    # Type a value and click "Attribute" at once: the count the blur starts must not cancel the redraw.
    row.get_by_label("Value").fill("50")
    hold(lambda: page.locator(".sb-add").last.get_by_role("button", name="Attribute", exact=True).click())
    release()
    expect(page.locator("#row-1")).to_be_visible()
    expect(page.locator("#row-1").get_by_label("Value")).to_have_value("")
    expect(page.locator("#row-0").get_by_label("Value")).to_have_value("50")
    expect(page.locator("#row-err-1")).to_have_text("Enter a value to count")
    expect(page.locator("#row-err-1")).not_to_contain_text("Must be a number")

    # Remove row 0 and, while that redraw is in flight, type into row 1: the text lands in the
    # same condition, now row 0, and is counted (age = 30: one user).
    hold(lambda: page.locator("#row-0").get_by_role("button", name="Remove this condition").click())
    page.locator("#row-1").get_by_label("Value").press_sequentially("30", delay=40)
    release()
    expect(page.locator("#row-1")).to_have_count(0)
    expect(page.locator("#row-0").get_by_label("Value")).to_have_value("30")
    expect(page.locator("#segment-count")).to_contain_text("1 of 40 users match", timeout=10_000)

    # Tab from the value onto Remove: the count still includes the row (age = 99: nobody).
    value = page.locator("#row-0").get_by_label("Value")
    value.fill("99")
    value.press("Tab")
    expect(page.locator("#row-0").get_by_role("button", name="Remove this condition")).to_be_focused()
    expect(page.locator("#segment-count")).to_contain_text("0 of 40 users match", timeout=10_000)
    page.wait_for_timeout(800)
    expect(page.locator("#segment-count")).to_contain_text("0 of 40 users match")
    expect(page.locator("#row-0")).to_be_visible()
    shot(page, "6-builder-after-races")
