"""Accessibility in Chromium: axe-core (vendored from npm, tests only) finds no serious or
critical violation on any dashboard page, for each role, at desktop and phone widths (with the
phone menu open); confirmations are an accessible <dialog>; every control has a name; control
borders reach 3:1."""

from pathlib import Path

import pytest
from playwright.sync_api import expect

from dashboard.extensions import db
from dashboard.models import ApiKey
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

AXE = Path(__file__).parent / "vendor" / "axe-core-4.14.1.min.js"


def _context(browser, width: int, height: int):
    # axe is injected as a script tag; the app's CSP (rightly) refuses scripts it did not serve.
    return browser.new_context(viewport={"width": width, "height": height}, bypass_csp=True)


def _axe(page) -> list[dict]:
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("""async () => {
      const result = await axe.run(document, {resultTypes: ['violations']});
      return result.violations.filter(v => v.impact === 'serious' || v.impact === 'critical').map(v => ({
        id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.slice(0, 4).map(n =>
          n.target.join(' ') + ' :: ' + n.html.slice(0, 160) + ' :: ' + (n.failureSummary || '').slice(0, 200))}));
    }""")
    return found


@pytest.mark.parametrize("width", (1280, 390))
@pytest.mark.parametrize("role", (None, *ROLES))
def test_axe_finds_no_serious_violation_on_any_page(app, browser, live_server, sweep, role, width):
    context = _context(browser, width, 800 if width > 600 else 844)
    page = context.new_page()
    try:
        if role is not None:
            sign_in(page, live_server, role)
        shots = SHOTS / str(width) / (role or "anonymous")
        shots.mkdir(parents=True, exist_ok=True)
        seen, problems = 0, []
        for path in page_urls(app, sweep, role):
            url = live_server + path
            if not open_page(page, url):
                continue
            seen += 1
            if width < 600 and page.locator("summary.navmenu-toggle").count():
                page.locator("summary.navmenu-toggle").click()  # check the open menu too
            if width > 600:
                page.screenshot(path=str(shots / f"{shot_name(url, live_server)}.png"), full_page=True)
            violations = _axe(page)
            if violations:
                problems.append((path, violations))
        assert not problems, "\n".join(f"{p}: {v}" for p, v in problems)
        assert seen >= (1 if role is None else 15), seen
    finally:
        context.close()


def test_axe_on_the_template_editor_with_a_new_variable_row(browser, live_server, sweep):
    context = _context(browser, 1280, 900)
    page = context.new_page()
    try:
        sign_in(page, live_server, "marketer")
        page.goto(f"{live_server}/templates/new")
        page.get_by_role("button", name="Add variable").click()
        rows = page.locator("#schema-table tbody tr")
        expect(rows.last.get_by_label("Sample value for variable", exact=False)).to_be_visible()
        names = page.evaluate("""() => [...document.querySelectorAll(
              '#schema-table input:not([type=hidden]), #schema-table select')]
            .map(el => [el.name, el.labels.length ? [...el.labels].map(l => l.textContent.trim()).join(' ')
                                                    : (el.getAttribute('aria-label') || '')])""")
        for name, label in names:
            assert label.strip() and not label.strip().endswith(" for"), (name, label)
            assert not label.rstrip().endswith("for "), (name, label)
        assert _axe(page) == []
    finally:
        context.close()


def test_confirmation_is_an_accessible_dialog(page, live_server, sweep):
    """Revoke an API key: the dialog shows the form's confirmation text, takes focus and keeps it,
    Escape cancels and gives focus back to the button; confirming does the action."""
    sign_in(page, live_server, "admin")
    page.goto(f"{live_server}/admin/api-keys")
    native = []
    page.on("dialog", lambda d: (native.append(d.message), d.dismiss()))
    revoke = page.get_by_role("button", name="Revoke").first
    revoke.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Programs using it will get 401")
    expect(dialog.get_by_role("button", name="Go back")).to_be_focused()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "confirm-dialog.png"))
    page.keyboard.press("Tab")
    expect(dialog.get_by_role("button", name="Revoke")).to_be_focused()
    page.keyboard.press("Tab")  # wraps around, never leaves the dialog
    expect(dialog.get_by_role("button", name="Go back")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(dialog.get_by_role("button", name="Revoke")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(revoke).to_be_focused()
    db.session.expire_all()
    assert db.session.query(ApiKey).filter(ApiKey.revoked_at.isnot(None)).count() == 0

    revoke.click()
    dialog.get_by_role("button", name="Go back").click()
    expect(dialog).to_be_hidden()
    expect(revoke).to_be_focused()

    revoke.click()
    dialog.get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("revoked", exact=False).first).to_be_visible()
    db.session.expire_all()
    assert db.session.query(ApiKey).filter(ApiKey.revoked_at.isnot(None)).count() == 1
    assert native == []  # no native browser dialog at any point


def test_control_borders_reach_three_to_one(page, live_server, sweep):
    sign_in(page, live_server, "marketer")
    page.goto(f"{live_server}/templates/new")
    ratios = page.evaluate("""() => {
      const lum = c => { const [r, g, b] = c.match(/\\d+(\\.\\d+)?/g).slice(0, 3).map(Number).map(v => {
        v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
        return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
      const ratio = (a, b) => {
        const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
      const bg = el => { for (let e = el.parentElement; e; e = e.parentElement) {
        const c = getComputedStyle(e).backgroundColor; if (!c.endsWith(', 0)') && c !== 'transparent') return c; }
        return 'rgb(255, 255, 255)'; };
      return [...document.querySelectorAll('input[type=text], select, textarea, .btn:not(.btn-link)')]
        .filter(el => el.offsetParent).map(el => [el.name || el.textContent.trim(),
          ratio(getComputedStyle(el).borderTopColor, bg(el))]);
    }""")
    assert ratios
    low = [(name, round(r, 2)) for name, r in ratios if r < 3]
    assert not low, low
