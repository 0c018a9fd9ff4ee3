"""A newcomer's walk through a running Herald (e.g. `make run`), with headless Chromium:
sign in as the demo marketer, build a campaign from a CSV, send it, watch it finish, then look
the user up as support. Saves a screenshot of every page at 1280 px and 390 px wide.

    python scripts/walkthrough.py http://127.0.0.1:5000 docs/screenshots
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
        "--no-first-run", "--disable-component-update", "--disable-sync"]


def main(base: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    csv = Path(tempfile.mkdtemp()) / "spring.csv"
    csv.write_text("userId,firstName,email\n" + "".join(f"demo-{i},Name{i},demo{i}@example.com\n" for i in range(250))
                   + "bad id,Oops,\n")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        for width, suffix in ((1280, ""), (390, "-narrow")):
            page = browser.new_context(viewport={"width": width, "height": 900}).new_page()

            def shot(name: str, page=page, suffix=suffix) -> None:
                page.screenshot(path=str(out / f"{name}{suffix}.png"), full_page=True)

            def sign_out(page=page) -> None:
                menu = page.locator("summary.navmenu-toggle")
                if menu.is_visible():  # on a phone the account box is in the folded menu
                    menu.click()
                page.get_by_role("button", name="Sign out").click()

            page.goto(base + "/login")
            shot("01-login")
            page.get_by_label("Email").fill("marketer@herald.test")
            page.get_by_label("Password").fill("herald-marketer")
            page.get_by_role("button", name="Sign in").click()
            shot("02-overview")
            page.goto(base + "/templates/new")
            name = f"Spring sale {int(time.time())}{suffix}"
            page.get_by_label("Name", exact=True).fill(name)
            page.get_by_label("Title").fill("Hi {{ firstName }}, spring is here")
            page.get_by_label("Body").fill("Everything is 20% off until Sunday.")
            page.get_by_label("Sample value for firstName").fill("Ana")
            expect(page.get_by_test_id("preview-title")).to_have_text("Hi Ana, spring is here")
            shot("03-template-editor")
            page.get_by_role("button", name="Save draft").click()
            page.get_by_role("button", name="Approve").click()
            page.get_by_role("dialog").get_by_role("button", name="Approve").click()
            page.wait_for_selector("text=Template approved")
            shot("04-template")
            page.goto(base + "/campaigns/new")
            page.get_by_label("Campaign name").fill(name)
            page.get_by_label("Template").select_option(label=f"{name} (v1 live)")
            shot("05-campaign-form")
            page.get_by_role("button", name="Create draft").click()
            page.get_by_label("Upload a CSV").set_input_files(str(csv))
            page.get_by_role("button", name="Check file").click()
            expect(page.get_by_test_id("accepted-count")).to_be_visible()
            shot("06-upload-preview")
            page.get_by_role("button", name="Import 250 recipients").click()
            shot("07-campaign-draft")
            page.locator("#review").get_by_role("button", name="Send now").click()
            page.get_by_role("dialog").get_by_role("button", name="Send now").click()
            expect(page.get_by_test_id("status-badge")).to_have_text("sent", timeout=60_000)
            shot("08-campaign-sent")
            page.goto(base + "/campaigns")
            shot("09-campaigns")
            sign_out()
            page.get_by_label("Email").fill("support@herald.test")
            page.get_by_label("Password").fill("herald-support")
            page.get_by_role("button", name="Sign in").click()
            page.goto(base + "/support?userId=demo-7")
            shot("10-support-lookup")
            page.goto(base + "/users/demo-7")
            shot("11-user-feed")
            page.goto(base + "/audit")
            shot("12-audit")
            sign_out()
            page.get_by_label("Email").fill("admin@herald.test")
            page.get_by_label("Password").fill("herald-admin")
            page.get_by_role("button", name="Sign in").click()
            for path, label in (("/admin/accounts", "13-accounts"), ("/admin/api-keys", "14-api-keys"),
                                ("/admin/channels", "15-channels"), ("/templates", "16-templates")):
                page.goto(base + path)
                shot(label)
            page.context.close()
        browser.close()
    print(f"screenshots in {out}")


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/"), Path(sys.argv[2] if len(sys.argv) > 2 else "/tmp/herald-walk"))
