"""The API reference page in headless Chromium: Redoc draws the document under the app's CSP."""

from tests.test_browser import SHOTS, _sign_in


def test_api_reference_renders_under_the_csp(page, live_server, make_account):
    account = make_account("support")
    _sign_in(page, live_server, account.email)
    page.wait_for_selector(".who-email")
    errors, elsewhere = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: None if r.url.startswith((live_server, "data:")) else elsewhere.append(r.url))
    page.get_by_role("link", name="API", exact=True).click()
    page.wait_for_url(f"{live_server}/docs/api")
    page.get_by_role("heading", name="Herald API (1.0.0)").wait_for(timeout=20_000)
    page.get_by_role("link", name="Campaigns").last.click()
    page.get_by_text("Create a draft campaign").first.wait_for()
    page.wait_for_timeout(500)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "api-reference.png"))
    assert errors == [], errors  # a CSP refusal (style, font, script) is reported here
    assert elsewhere == []  # nothing is loaded from another origin
