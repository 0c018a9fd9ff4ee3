"""Every dashboard page, for the browser sweeps (layout at 390 px, axe-core): the GET routes of the
route x role table in tests/test_security.py, on real objects (an approved template with a draft
edit, a draft campaign with recipients, a sent campaign, a user with a feed), per role."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dashboard.services import campaigns, control, lifecycle, recipients, templates
from tests.conftest import PASSWORD
from tests.engine import drain
from tests.test_security import ACTOR, EXPECTED, _url

ROLES = ("admin", "marketer", "support")
SHOTS = Path(os.environ.get("HERALD_SHOTS13", "/tmp/herald-screenshots/pages"))
LONG_NAME = "Black Friday early access for VIP customers in Europe and North America — wave 2"


@pytest.fixture(name="sweep")
def sweep_fixture(world):
    """The security sweep's objects, plus a draft with recipients and a long name, a canary send
    held after its first wave (issue 14), and a template whose approved version has a newer draft."""
    draft = campaigns.create({"name": LONG_NAME, "templateId": "t"}, ACTOR)
    recipients.add_manual(draft.id, ["u1", "u2", "customer-000123456789"], {"u1": {"name": "Ann"}}, ACTOR)
    held = campaigns.create({"name": "Canary " + LONG_NAME, "templateId": "t", "variables": {"name": "Ann"}}, ACTOR)
    recipients.add_manual(held.id, [f"customer-{i:012d}" for i in range(40)], None, ACTOR)
    lifecycle.send(held.id, None, ACTOR, options=control.parse_options({"canary": {"size": 4, "holdMinutes": 60}}))
    drain()
    templates.update("t", {"channels": {"in_app": {"title": "Hello {{ name }}, a longer title for the edit",
                                                   "body": "Body text"}}}, ACTOR)
    return dict(world, draft=draft.id, held=held.id)


def page_urls(app, sweep: dict, role: str | None) -> list[str]:
    """Every GET page the role may open (role None: the public ones), with real ids."""
    urls = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint == "static" or rule.endpoint.startswith("api."):
            continue
        expected = EXPECTED.get(rule.endpoint, set(ROLES))  # a page still being added: everyone
        if (expected == "public") != (role is None) or (role is not None and role not in expected):
            continue
        urls.append(_url(rule, sweep, real=True))
    if role is not None:
        urls += [f"/campaigns/{sweep['draft']}", f"/campaigns/{sweep['held']}", f"/support?userId={sweep['user']}",
                 "/no-such-page"]
    return sorted(set(urls))


def sign_in(page, live_server: str, role: str) -> None:
    page.goto(f"{live_server}/login")
    page.get_by_label("Email").fill(f"{role}@sweep.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server}/")


def open_page(page, url: str) -> bool:
    """Go to url when it is a whole dashboard page (not a fragment, a CSV or JSON); True if so."""
    probe = page.request.get(url)
    if not probe.headers.get("content-type", "").startswith("text/html") or '<main id="main"' not in probe.text():
        return False
    page.goto(url)
    page.wait_for_load_state("load")
    if page.locator("#api-reference").count():  # Redoc draws the API reference after loading it
        page.locator("#api-reference h1").first.wait_for(timeout=20_000)
        page.wait_for_timeout(300)
    return True


def shot_name(url: str, live_server: str) -> str:
    path = url.removeprefix(live_server).strip("/") or "overview"
    return "".join(c if c.isalnum() else "-" for c in path).strip("-")
