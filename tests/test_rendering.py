import pytest

from dashboard import rendering


def test_substitutes_keys_with_optional_spaces():
    assert rendering.render("Hi {{name}}, {{ name }} and {{   city }}!", {"name": "Ana", "city": "Oslo"}) \
        == "Hi Ana, Ana and Oslo!"


def test_missing_value_renders_empty():
    assert rendering.render("Hi {{ name }}.", {}) == "Hi ."


def test_html_output_escapes_values_not_markup():
    out = rendering.render("<p>{{ name }}</p>", {"name": '<script>alert("x")</script>'}, html=True)
    assert out == "<p>&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;</p>"


def test_plain_output_keeps_values_verbatim():
    assert rendering.render("{{ name }}", {"name": "<b>&"}) == "<b>&"


@pytest.mark.parametrize("text", ["{% for x in y %}{{ x }}{% endfor %}", "{{ 7*7 }}", "{{ config }}",
                                  "{{ ''.__class__.__mro__ }}", "{{ name|upper }}", "{{ name.__class__ }}",
                                  "{# comment #}", "${7*7}"])
def test_engine_features_are_literal_text(text):
    out = rendering.render(text, {"x": "X", "name": "ana", "config": "C"})
    # Only a bare {{ key }} is replaced; nothing is evaluated.
    assert "49" not in out and "ANA" not in out and "class '" not in out
    if text == "{{ config }}":
        assert out == "C"  # a plain key is just a dictionary lookup, never the app config
    elif "for x" in text:
        assert out == "{% for x in y %}X{% endfor %}"
    else:
        assert out == text


def test_value_that_looks_like_a_placeholder_is_not_rendered_again():
    assert rendering.render("{{ a }}", {"a": "{{ b }}", "b": "secret"}) == "{{ b }}"


def test_placeholders_in_order():
    assert rendering.placeholders("{{ b }} {{a}} {{ b }} {{ 7*7 }}") == ["b", "a"]


def test_image_and_action_values_render_their_url():
    assert rendering.render("{{ img }}", {"img": {"url": "https://x.test/a.png", "width": 10}}) == "https://x.test/a.png"
    assert rendering.render("{{ go }}", {"go": {"type": "web", "data": "https://x.test"}}) == "https://x.test"


@pytest.mark.parametrize("var_type,value,ok", [
    ("image", "https://cdn.test/a.png", True), ("image", "javascript:alert(1)", False),
    ("image", "ftp://x.test/a", False), ("action", "http://x.test/go", True), ("action", "not a url", False),
    ("action", {"type": "custom", "data": "open-settings"}, True), ("image", {"url": "https://x/y.png"}, True),
    ("string", "anything", True), ("string", {"a": 1}, False),
])
def test_check_value(var_type, value, ok):
    assert (rendering.check_value(var_type, value) is None) is ok


def test_resolve_precedence_and_missing_required():
    schema = [{"key": "name", "type": "string", "required": True, "defaultValue": "friend"},
              {"key": "city", "type": "string", "required": True},
              {"key": "pic", "type": "image"}]
    values, missing, problems = rendering.resolve(schema, {"name": "Ana"}, {"name": "Team", "pic": "bad"})
    assert values["name"] == "Ana" and missing == ["city"] and problems == {"pic": "must be an http(s) URL"}
    values, missing, _ = rendering.resolve(schema, {}, {})
    assert values["name"] == "friend" and missing == ["city"]
    values, _, _ = rendering.resolve(schema, {}, {"name": "Team", "city": "Rome"})
    assert values == {"name": "Team", "city": "Rome"}


@pytest.mark.parametrize("text,ok", [
    ("https://shop.test/a", True), ("{{ cta }}", True), ("{{ base }}/x", True), ("https://x.test/{{ p }}", True),
    ("HTTP://{{ host }}", True), ("", True),
    ("javascript:alert(1)", False), ("javascript:alert(1)//{{ x }}", False), ("data:,{{ x }}", False),
    ("https:/{{ x }}", False), ("//x.test/{{ p }}", False), ("https://a b/{{ p }}", False), ("ftp://x/{{ p }}", False),
])
def test_url_field_must_start_with_http_or_a_placeholder(text, ok):
    assert (rendering.url_field_problem(text) is None) is ok


@pytest.mark.parametrize("var_type,value,problem", [
    ("string", "https://x.test", None), ("string", "javascript:alert(1)", "must be an http(s) URL"),
    ("action", {"type": "custom", "data": "open-settings"}, "must be an http(s) URL"),
    ("action", {"type": "web", "data": "https://x.test"}, None), ("string", {"url": "https://x.test"}, "must be text"),
    ("image", ["https://x.test"], "must be text"),
])
def test_a_value_that_starts_a_url_must_be_an_http_url(var_type, value, problem):
    assert rendering.check_value(var_type, value, starts_url=True) == problem


def test_resolve_checks_the_keys_that_start_a_url():
    schema = [{"key": "link", "type": "string"}, {"key": "note", "type": "string"}]
    own = {"link": "javascript:alert(1)", "note": "javascript:alert(1)"}
    _, _, problems = rendering.resolve(schema, own, None, frozenset({"link"}))
    assert problems == {"link": "must be an http(s) URL"}
