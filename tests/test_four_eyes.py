"""Four-eyes approval (issue 14): a template version is approved by someone other than its last
editor, and a send above the workspace's threshold waits for a second account; the admin page
that switches it on. Service, web and API paths all go through services.templates.transition."""

from __future__ import annotations

import html

import pytest
from sqlalchemy import select

from dashboard.errors import LifecycleError
from dashboard.extensions import db
from dashboard.models import AuditEvent, Campaign, TemplateVersion
from dashboard.services import accounts, campaigns, control, lifecycle, recipients, templates, workspace
from dashboard.services.actor import Actor
from tests.conftest import csrf_from, login
from tests.engine import drain
from tests.test_delivery_faults import assert_counters_match_rows
from tests.test_sending import make_campaign

SYSTEM = Actor.system("test")
CONTENT = {"channels": {"in_app": {"title": "Hello", "body": "Spring sale"}}}


def person(make_account, role: str = "marketer") -> tuple:
    account = make_account(role)
    return account, Actor(label=account.email, account_id=account.id)


def four_eyes(on: bool = True, threshold: int = 1000) -> None:
    workspace.set_four_eyes(on, threshold, SYSTEM)


def draft(actor: Actor, template_id: str = "spring") -> None:
    templates.create({"name": "Spring", "templateId": template_id, **CONTENT}, actor)


def version(template_id: str, number: int) -> TemplateVersion:
    db.session.expire_all()
    return next(v for v in templates.get(template_id).versions if v.version == number)


# -- the template rule (service) ---------------------------------------------------------------

def test_the_editor_may_not_approve_their_own_version_another_account_may(make_account):
    ana, ana_actor = person(make_account)
    ben, ben_actor = person(make_account)
    four_eyes()
    draft(ana_actor)
    assert version("spring", 1).edited_by_id == ana.id
    with pytest.raises(control.FourEyesRequired) as refused:
        templates.transition("spring", "approve", ana_actor)
    assert refused.value.status == 403 and refused.value.code == "four_eyes"
    assert refused.value.message == ("Four-eyes approval is on: you last edited version 1, so another person "
                                     "must approve it.")
    assert templates.get("spring").status == "draft"
    templates.transition("spring", "approve", ben_actor)
    v1 = version("spring", 1)
    assert (templates.get("spring").status, v1.approved_by) == ("approved", ben.email)
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "template.approved"))
    assert (event.actor_account_id, event.details["approvedBy"], event.details["editedById"]) == \
        (ben.id, ben.email, ana.id)


def test_the_last_editor_counts_in_place_edits_and_new_versions(make_account):
    ana, ana_actor = person(make_account)
    ben, ben_actor = person(make_account)
    four_eyes()
    draft(ana_actor)
    templates.update("spring", {"name": "Spring (Ben's words)"}, ben_actor)  # a draft changes in place
    assert version("spring", 1).edited_by_id == ben.id
    with pytest.raises(control.FourEyesRequired):
        templates.transition("spring", "approve", ben_actor)
    templates.transition("spring", "approve", ana_actor)  # Ana wrote v1 first, but Ben edited it last
    templates.update("spring", {"name": "Spring v2"}, ana_actor)  # an approved template gets v2
    assert (version("spring", 2).edited_by_id, version("spring", 1).edited_by_id) == (ana.id, ben.id)
    with pytest.raises(control.FourEyesRequired, match="you last edited version 2"):
        templates.transition("spring", "approve", ana_actor)
    assert templates.get("spring").status == "draft"
    templates.transition("spring", "approve", ben_actor)
    assert (version("spring", 2).approved_by, version("spring", 1).approved_by) == (ben.email, ana.email)


def test_an_unknown_editor_binds_no_account_but_the_system_never_approves(make_account):
    """Versions written before this release (or by the system) have no editor: any account may
    approve them. An actor without an account cannot be the second person."""
    ana, ana_actor = person(make_account)
    draft(SYSTEM)
    assert version("spring", 1).edited_by_id is None
    four_eyes()
    with pytest.raises(control.FourEyesRequired, match="not by the system"):
        templates.transition("spring", "approve", SYSTEM)
    templates.transition("spring", "approve", ana_actor)
    assert version("spring", 1).approved_by == ana.email


def test_with_four_eyes_off_the_editor_approves(make_account):
    _, ana_actor = person(make_account)
    four_eyes(True)
    four_eyes(False)
    draft(ana_actor)
    templates.transition("spring", "approve", ana_actor)
    assert templates.get("spring").status == "approved"


# -- the template page -------------------------------------------------------------------------

def test_template_page_shows_the_editor_who_must_wait_and_refuses_their_post(app, client, make_account):
    ana, ana_actor = person(make_account)
    ben = make_account("marketer")
    four_eyes()
    draft(ana_actor)
    assert login(client, ana.email).status_code == 302
    page = client.get("/templates/spring").get_data(as_text=True)
    assert "Waiting for another person to approve (four-eyes)" in page
    assert "you last edited version 1, so another person must approve it" in page
    assert "Approve v1" not in page
    response = client.post("/templates/spring/approve", data={"csrf_token": csrf_from(page)})
    assert response.status_code == 302  # the form's own page, with the reason
    page = client.get("/templates/spring").get_data(as_text=True)
    assert "Four-eyes approval is on: you last edited version 1, so another person must approve it." in page
    assert "flash-error" in page and templates.get("spring").status == "draft"

    other = app.test_client()
    assert login(other, ben.email).status_code == 302
    page = other.get("/templates/spring").get_data(as_text=True)
    assert "Approve v1" in page and "Waiting for another person" not in page
    assert "needs approval by someone other than the person who last edited it" in page
    response = other.post("/templates/spring/approve", data={"csrf_token": csrf_from(page)})
    assert response.status_code == 302
    page = other.get("/templates/spring").get_data(as_text=True)
    assert "Template approved (version 1)." in page
    assert f"approved by {ben.email}" in page.split("Version history", 1)[1]
    assert templates.get("spring").status == "approved"


def test_template_page_offers_approve_to_the_editor_when_four_eyes_is_off(client, make_account):
    ana, ana_actor = person(make_account)
    draft(ana_actor)
    assert login(client, ana.email).status_code == 302
    page = client.get("/templates/spring").get_data(as_text=True)
    assert "Approve v1" in page and "four-eyes" not in page.lower()


# -- the API goes through the same service -----------------------------------------------------

def test_api_approve_by_the_editors_key_is_refused_and_by_another_account_accepted(client, make_account):
    def key_of(account):
        _, plain = accounts.create_api_key(account, "k", SYSTEM)
        return {"Authorization": f"Bearer {plain}"}

    editor, other = make_account("marketer"), make_account("marketer")
    editor_key, other_key = key_of(editor), key_of(other)
    four_eyes()
    created = client.post("/api/v1/templates", json={"name": "Spring", "templateId": "spring", **CONTENT},
                          headers=editor_key)
    assert created.status_code == 201, created.get_json()
    assert version("spring", 1).edited_by_id == editor.id
    refused = client.post("/api/v1/templates/spring/approve", headers=editor_key)
    assert refused.status_code == 403
    error = refused.get_json()["error"]
    assert error["code"] == "four_eyes" and "you last edited version 1" in error["message"]
    accepted = client.post("/api/v1/templates/spring/approve", headers=other_key)
    assert accepted.status_code == 200, accepted.get_json()
    assert accepted.get_json()["status"] == "approved"
    assert version("spring", 1).approved_by.endswith(f"({other.email})")


# -- the admin page ----------------------------------------------------------------------------

def test_admin_saves_four_eyes_settings_and_bad_values_show_next_to_the_field(client, logged_in):
    admin = logged_in("admin")
    page = client.get("/admin/workspace").get_data(as_text=True)
    assert "Require a second person (four-eyes)" in page and 'value="1000"' in page
    assert 'aria-current="page">Workspace</a>' in page
    response = client.post("/admin/workspace", data={"enabled": "y", "threshold": "10",
                                                     "csrf_token": csrf_from(page)})
    assert response.status_code == 302
    assert workspace.four_eyes() == workspace.FourEyes(True, 10)
    page = html.unescape(client.get("/admin/workspace").get_data(as_text=True))
    assert "Four-eyes approval is on: templates need a second person's approval, and so do sends to more " \
           "than 10 recipients." in page
    assert 'value="10"' in page and "checked" in page
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "workspace.four_eyes"))
    assert event.actor_account_id == admin.id
    assert event.details == {"before": {"enabled": False, "threshold": 1000},
                             "after": {"enabled": True, "threshold": 10}}

    unreadable = "Enter a whole number of recipients, e.g. 1000."
    for bad, message in (("-1", "Enter a whole number from 0 to 10,000,000."), ("", "Enter a number of recipients."),
                         ("lots", unreadable), ("2.5", unreadable)):
        response = client.post("/admin/workspace", data={"threshold": bad, "csrf_token": csrf_from(page)})
        body = response.get_data(as_text=True)
        assert response.status_code == 400, bad
        assert f'<p class="field-error" id="threshold-error">{message}</p>' in body, bad
        assert 'aria-invalid="true"' in body
    assert workspace.four_eyes() == workspace.FourEyes(True, 10)  # nothing saved by a refused form
    response = client.post("/admin/workspace", data={"threshold": "0", "csrf_token": csrf_from(page)})
    assert response.status_code == 302 and workspace.four_eyes() == workspace.FourEyes(False, 0)
    response = client.post("/admin/workspace", data={"enabled": "y", "threshold": "5"})  # no token
    assert response.status_code == 400 and workspace.four_eyes() == workspace.FourEyes(False, 0)


def test_non_admins_get_403_on_the_workspace_page(app, make_account):
    for role in ("marketer", "support"):
        client = app.test_client()
        assert login(client, make_account(role).email).status_code == 302
        token = csrf_from(client.get("/").get_data(as_text=True))
        assert client.get("/admin/workspace").status_code == 403
        response = client.post("/admin/workspace", data={"enabled": "y", "threshold": "1", "csrf_token": token})
        assert response.status_code == 403
    assert workspace.four_eyes() == workspace.FourEyes(False, 1000)


# -- send approval (lifecycle.send / control.approve_send) ---------------------------------------

def test_a_large_send_waits_for_a_second_account_and_a_small_one_starts(app, make_account):
    _, ana = person(make_account)
    ben, ben_actor = person(make_account)
    big = make_campaign(20)  # its template is approved before four-eyes is switched on
    four_eyes(True, 10)
    waiting = lifecycle.send(big.id, None, ana)
    assert waiting.status == "scheduled" and waiting.awaiting_approval
    assert (waiting.approval_requested_by, waiting.scheduled_at) == (ana.label, None)
    with pytest.raises(control.FourEyesRequired):
        control.approve_send(big.id, ana)
    drain()  # nothing runs while it waits
    assert db.session.get(Campaign, big.id).sent == 0
    started = control.approve_send(big.id, ben_actor)
    assert started.status == "sending" and started.approved_by == ben.email
    drain()
    done = assert_counters_match_rows(big.id)
    assert (done.status, done.sent, done.total) == ("sent", 20, 20)

    small = campaigns.create({"name": "Small", "templateId": "promo", "variables": {"offer": "5%"}}, SYSTEM)
    recipients.add_manual(small.id, [f"s{i}" for i in range(5)], None, SYSTEM)
    assert lifecycle.send(small.id, None, ana).status == "sending"
    drain()
    assert (assert_counters_match_rows(small.id).status) == "sent"


def test_unschedule_clears_the_approval_request(make_account):
    _, ana = person(make_account)
    c = make_campaign(20)
    four_eyes(True, 10)
    assert lifecycle.send(c.id, None, ana).awaiting_approval
    back = lifecycle.unschedule(c.id, ana)
    assert back.status == "draft" and not back.awaiting_approval
    assert (back.approval_requested_by, back.approval_requested_by_id, back.approval_requested_at) == (None,) * 3
    with pytest.raises(LifecycleError):
        control.approve_send(c.id, SYSTEM)
