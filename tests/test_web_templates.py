import re

import pytest
from sqlalchemy import select

from dashboard.extensions import db
from dashboard.models import Template, TemplateVersion
from tests.conftest import csrf_from


def form_data(client, **overrides) -> dict:
    data = {
        "csrf_token": csrf_from(client.get("/templates/new").get_data(as_text=True)),
        "name": "Order shipped", "template_id": "", "category": "transactional", "tags": "orders, shipping",
        "in_app_enabled": "y", "in_app_title": "Your order {{ orderId }} shipped",
        "in_app_body": "Hi {{ name }}", "in_app_image_url": "", "in_app_action_url": "{{ track }}",
        "email_subject": "", "email_text": "", "email_html": "",
        "variables-0-key": "orderId", "variables-0-type": "string", "variables-0-required": "y",
        "variables-1-key": "name", "variables-1-type": "string", "variables-1-default_value": "friend",
        "variables-2-key": "track", "variables-2-type": "action",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_form_creates_draft_with_schema(client, logged_in):
    logged_in("marketer")
    response = client.post("/templates/new", data=form_data(client))
    assert response.status_code == 302, response.get_data(as_text=True)
    template = db.session.scalar(select(Template))
    assert (template.template_id, template.status, template.version) == ("order-shipped", "draft", 1)
    assert template.tags == ["orders", "shipping"]
    assert template.current.variable_schema == [
        {"key": "orderId", "type": "string", "label": "", "required": True},
        {"key": "name", "type": "string", "label": "", "required": False, "defaultValue": "friend"},
        {"key": "track", "type": "action", "label": "", "required": False}]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "saved as a draft (version 1)" in page


@pytest.mark.parametrize("overrides,message", [
    ({"variables-0-key": "9lives"}, "is not a valid key"),
    ({"variables-1-key": "orderId"}, 'duplicate key "orderId"'),
    ({"variables-2-default_value": "https://x.test"}, "only allowed for string variables, not action"),
    ({"variables-2-type": "number"}, "Not a valid choice"),
    ({"in_app_body": "Hi {{ nickname }}"}, "uses {{ nickname }}, which is not in the variable schema"),
    ({"in_app_title": "   "}, "is required for an enabled channel"),
    ({"email_enabled": "y", "email_subject": "Shipped", "email_text": ""}, "is required for an enabled channel"),
    ({"in_app_enabled": None}, "add content for at least one channel"),
    ({"name": ""}, "a name is required"),
    ({"in_app_image_url": "javascript:alert(1)"}, "must be an http(s) URL"),
    ({"template_id": "Not A Slug"}, "lowercase letters, digits and dashes"),
])
def test_form_shows_each_validation_rule(client, logged_in, overrides, message):
    logged_in("marketer")
    response = client.post("/templates/new", data=form_data(client, **overrides))
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert message.replace('"', "&#34;") in html or message in html
    assert db.session.scalar(select(Template)) is None


def test_add_and_remove_variable_rows_without_saving(client, logged_in):
    logged_in("marketer")
    data = form_data(client, intent="add-variable")
    html = client.post("/templates/_schema", data=data, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert 'name="variables-3-key"' in html and "<html" not in html
    data = form_data(client, intent="remove-variable-0")
    html = client.post("/templates/_schema", data=data).get_data(as_text=True)
    assert 'value="orderId"' not in html
    assert re.search(r'name="variables-1-key" placeholder="firstName" type="text" value="track"', html)
    # Without JavaScript the same buttons submit the page and re-render the editor.
    html = client.post("/templates/new", data=form_data(client, intent="add-variable")).get_data(as_text=True)
    assert 'name="variables-3-key"' in html
    assert db.session.scalar(select(Template)) is None


def test_preview_renders_samples_escaped(client, logged_in):
    logged_in("marketer")
    data = form_data(client, **{"variables-1-sample": "<img src=x onerror=alert(1)>",
                                "email_enabled": "y", "email_subject": "Hi {{ name }}", "email_text": "t",
                                "email_html": "<p>{{ name }}</p>"})
    html = client.post("/templates/_preview", data=data).get_data(as_text=True)
    assert "<img src=x onerror" not in html
    assert "Hi &lt;img src=x onerror=alert(1)&gt;" in html
    assert "Your order [orderId] shipped" in html  # no sample, no default: shown as [key]
    assert 'sandbox=""' in html  # the email HTML preview cannot run scripts


def test_editing_approved_template_via_form_creates_version_2(client, logged_in):
    logged_in("marketer")
    client.post("/templates/new", data=form_data(client))
    token = csrf_from(client.get("/templates/order-shipped").get_data(as_text=True))
    client.post("/templates/order-shipped/approve", data={"csrf_token": token})
    data = form_data(client, in_app_title="Shipped: {{ orderId }}")
    data["csrf_token"] = csrf_from(client.get("/templates/order-shipped/edit").get_data(as_text=True))
    response = client.post("/templates/order-shipped/edit", data=data)
    assert response.status_code == 302
    assert "Saved as version 2" in client.get(response.headers["Location"]).get_data(as_text=True)
    versions = db.session.scalars(select(TemplateVersion).order_by(TemplateVersion.version)).all()
    assert [v.channels["in_app"]["title"] for v in versions] == ["Your order {{ orderId }} shipped",
                                                                 "Shipped: {{ orderId }}"]
    assert versions[0].approved_at is not None and versions[1].approved_at is None
    v1_page = client.get("/templates/order-shipped?version=1").get_data(as_text=True)
    assert "You are viewing version 1" in v1_page and "Your order {{ orderId }} shipped" in v1_page


def test_support_can_view_but_not_change_templates(client, logged_in, make_account):
    from dashboard.services import templates
    from dashboard.services.actor import Actor

    templates.create({"name": "T", "channels": {"in_app": {"title": "t", "body": "b"}}}, Actor.system("test"))
    logged_in("support")
    assert client.get("/templates").status_code == 200
    page = client.get("/templates/t").get_data(as_text=True)
    assert "Approve" not in page and "Edit</a>" not in page and "New template" not in page
    token = csrf_from(page)
    for path in ("/templates/new", "/templates/t/edit"):
        assert client.get(path).status_code == 403
    for path in ("/templates/new", "/templates/t/edit", "/templates/t/approve", "/templates/t/archive",
                 "/templates/_schema", "/templates/_preview"):
        assert client.post(path, data={"csrf_token": token}).status_code == 403, path
    assert db.session.scalar(select(Template)).status == "draft"


def test_user_text_is_escaped_on_template_pages(client, logged_in):
    from dashboard.services import templates
    from dashboard.services.actor import Actor

    evil = '"><img src=x onerror=alert(1)>'
    templates.create({"name": evil, "templateId": "evil", "category": "<script>x</script>", "tags": [evil],
                      "channels": {"in_app": {"title": evil, "body": "<script>alert(1)</script>"}}},
                     Actor.system("test"))
    logged_in("marketer")
    for path in ("/templates", "/templates/evil", "/templates/evil/edit"):
        html = client.get(path).get_data(as_text=True)
        assert "<img src=x onerror" not in html, path
        assert "<script>alert(1)</script>" not in html and "<script>x</script>" not in html, path


def test_list_filters_by_status_and_search(client, logged_in):
    from dashboard.services import templates
    from dashboard.services.actor import Actor

    for name in ("Alpha promo", "Beta promo", "Gamma"):
        templates.create({"name": name, "channels": {"in_app": {"title": "t", "body": "b"}}}, Actor.system("t"))
    templates.transition("gamma", "approve", Actor.system("t"))
    logged_in("support")
    html = client.get("/templates?status=approved").get_data(as_text=True)
    assert "Gamma" in html and "Alpha promo" not in html
    html = client.get("/templates?q=promo").get_data(as_text=True)
    assert "Alpha promo" in html and "Beta promo" in html and "Gamma" not in html
    assert "No templates match “zzz”" in client.get("/templates?q=zzz").get_data(as_text=True)
