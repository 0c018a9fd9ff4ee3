"""The SSRF guard: webhook targets on loopback/private/link-local/metadata addresses are refused
on save, on "Send test" and, after DNS resolution, at every connection of a real send."""

import datetime
import ipaddress
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dashboard.channels import Message, addresses
from dashboard.channels.webhook import WebhookChannel, generate_secret
from dashboard.services import channel_settings
from tests.conftest import csrf_from
from tests.sinks import HttpSink
from tests.test_channels import final, recipient
from tests.test_webhooks import ACTOR, send


@pytest.fixture
def guarded(app, monkeypatch):
    """The app as in production: private targets refused (the suite allows them for its sinks)."""
    monkeypatch.setitem(app.config, "HERALD_WEBHOOK_ALLOW_PRIVATE", False)
    return app


@pytest.fixture
def sink():
    server = HttpSink()
    yield server
    server.close()


def fake_dns(monkeypatch, table: dict[str, list[list[str]]]) -> list[str]:
    """Resolve the names in `table` to its answers, one answer per lookup (the last repeats)."""
    lookups = []

    def resolve(host, port):
        lookups.append(host)
        answers = table[host]
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        return [ipaddress.ip_address(a) for a in answer]

    monkeypatch.setattr(addresses, "resolve", resolve)
    return lookups


@pytest.mark.parametrize("url,expected", [
    ("http://127.0.0.1/hook", "a loopback address (127.0.0.1)"),
    ("http://[::1]:8080/hook", "a loopback address (::1)"),
    ("https://10.0.0.1/hook", "a private address (10.0.0.1)"),
    ("http://169.254.169.254/latest/meta-data", "a cloud metadata address (169.254.169.254)"),
    ("http://[fd00:ec2::254]/", "a cloud metadata address (fd00:ec2::254)"),
    ("http://0.0.0.0:5000/", "an unspecified address (0.0.0.0)"),
    ("http://[::]/", "an unspecified address (::)"),
    ("http://localhost:5000/hook", "a loopback address (127.0.0.1)"),  # a name that resolves to loopback
    ("http://2130706433/", "a loopback address (127.0.0.1)"),  # 127.0.0.1 as one number
    ("http://[::ffff:127.0.0.1]/", f"a loopback address ({ipaddress.ip_address('::ffff:127.0.0.1')})"),
    ("http://[fe80::1]/", "a link-local address (fe80::1)"),
    ("http://192.168.1.20/", "a private address (192.168.1.20)"),
    ("http://100.64.0.1/", "a non-public address (100.64.0.1)"),
])
def test_non_public_targets_are_refused(url, expected):
    assert addresses.url_problem(url) == f"resolves to {expected}"
    assert addresses.url_problem(url, allow_private=True) is None


def test_public_and_unresolvable_targets_pass_the_save_check(monkeypatch):
    assert addresses.url_problem("https://93.184.216.34/hook") is None
    assert addresses.url_problem("ftp://example.com/") == "must be an http(s) URL"
    assert addresses.url_problem("http://[::1") == addresses.url_problem("http://a:99999/") == \
        "must be an http(s) URL with a valid host and port"
    fake_dns(monkeypatch, {"hooks.example.com": [["93.184.216.34", "2606:2800:220:1::1"]],
                           "mixed.example.com": [["93.184.216.34", "10.1.2.3"]]})
    assert addresses.url_problem("https://hooks.example.com/x") is None
    assert addresses.url_problem("https://mixed.example.com/x") == \
        "resolves to a private address (10.1.2.3)"  # every address is checked


def test_a_send_to_a_private_address_fails_the_recipient_for_good(guarded, sink, monkeypatch):
    monkeypatch.setitem(guarded.config, "HERALD_WEBHOOK_ALLOW_PRIVATE", True)  # saved while allowed …
    channel_settings.update("webhook", {"rateLimit": 5000, "settings": {"url": sink.url}}, ACTOR)
    monkeypatch.setitem(guarded.config, "HERALD_WEBHOOK_ALLOW_PRIVATE", False)  # … sent while refused
    c = send(["u1", "u2"])
    r = recipient("u1")
    assert (r.status, r.attempts) == ("failed", 1)
    assert r.last_error == "webhook URL resolves to a loopback address (127.0.0.1)"
    assert (final(c.id).failed, sink.requests) == (2, [])


def test_dns_rebinding_after_the_save_check_is_refused_at_send_time(guarded, sink, monkeypatch):
    port = sink.server.server_port
    lookups = fake_dns(monkeypatch, {"rebind.example.com": [["93.184.216.34"], ["127.0.0.1"]]})
    channel_settings.update("webhook", {"settings": {"url": f"http://rebind.example.com:{port}/hook"}}, ACTOR)
    assert lookups == ["rebind.example.com"]  # the save checked a public address
    send(["u1"])
    assert recipient("u1").last_error == "webhook URL resolves to a loopback address (127.0.0.1)"
    assert sink.requests == []


def test_the_connection_goes_to_the_address_that_was_checked(sink, monkeypatch):
    """The guard resolves the name once per connection and opens the socket to the address it
    checked: the OS resolver never sees the name (it could not: the name does not exist)."""
    port = sink.server.server_port
    lookups = fake_dns(monkeypatch, {"pinned.example.com": [["127.0.0.1"], ["10.9.9.9"]]})
    monkeypatch.setattr(addresses, "refusal", lambda ip: None if str(ip) == "127.0.0.1" else "private")
    url = f"http://pinned.example.com:{port}/hook"

    def message(i):
        return Message(recipient_id=i, campaign_id=1, user_id=f"p{i}", email=None, content={"title": "t"})

    channel = WebhookChannel(url, generate_secret(), timeout=2)
    try:
        results = [channel.send_batch([message(i)])[0] for i in range(3)]  # one kept-alive connection
    finally:
        channel.close()
    assert [r.outcome for r in results] == ["sent"] * 3 and lookups == ["pinned.example.com"]
    assert {r["headers"]["Host"] for r in sink.requests} == {f"pinned.example.com:{port}"}

    channel = WebhookChannel(url, generate_secret(), timeout=2)
    try:
        result = channel.send_batch([message(9)])[0]  # a new connection: the name now answers 10.9.9.9
    finally:
        channel.close()
    assert (result.outcome, result.error) == ("permanent", "webhook URL resolves to a private address (10.9.9.9)")
    assert len(sink.requests) == 3


def test_admin_page_and_api_refuse_private_targets_with_a_clear_error(guarded, client, logged_in, api_key):
    logged_in("admin")
    token = csrf_from(client.get("/admin/channels").get_data(as_text=True))
    saved = client.post("/admin/channels/webhook", data={"csrf_token": token, "rateLimit": "100", "enabled": "y",
                                                         "url": "http://127.0.0.1:9/hook"})
    page = client.get("/admin/channels").get_data(as_text=True)
    assert saved.status_code == 302
    assert "Not saved: url resolves to a loopback address (127.0.0.1)" in page
    # A URL saved while private targets were allowed: the test send (a userId, to the saved URL) is
    # refused at the connection, and the page names the address.
    guarded.config["HERALD_WEBHOOK_ALLOW_PRIVATE"] = True
    channel_settings.update("webhook", {"settings": {"url": "http://169.254.169.254/latest/meta-data/"}}, ACTOR)
    guarded.config["HERALD_WEBHOOK_ALLOW_PRIVATE"] = False
    client.post("/admin/channels/webhook/test", data={"csrf_token": token, "target": "u1"})
    page = client.get("/admin/channels").get_data(as_text=True)
    assert "failed (permanent)" in page and "cloud metadata address (169.254.169.254)" in page

    admin = {"Authorization": f"Bearer {api_key('admin')}"}
    answer = client.put("/api/v1/channels/webhook", json={"settings": {"url": "http://[::1]:8080/"}}, headers=admin)
    assert answer.status_code == 400
    assert answer.get_json()["error"]["details"] == [
        {"field": "settings.url", "message": "resolves to a loopback address (::1)"}]


def self_signed(tmp_path, name: str) -> tuple[str, str]:
    """A certificate (its own CA) for `name`, and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


def test_tls_to_the_checked_address_still_verifies_the_url_host(tmp_path, monkeypatch):
    """Connecting to the checked IP keeps SNI and certificate checks on the URL's host name."""
    cert, key = self_signed(tmp_path, "hooks.example.com")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    sink = HttpSink(tls=context)
    try:
        port = sink.server.server_port
        monkeypatch.setenv("SSL_CERT_FILE", cert)  # trust the test certificate
        fake_dns(monkeypatch, {"hooks.example.com": [["127.0.0.1"]], "other.example.com": [["127.0.0.1"]]})
        monkeypatch.setattr(addresses, "refusal", lambda ip: None)
        results = {}
        for host in ("hooks.example.com", "other.example.com"):
            channel = WebhookChannel(f"https://{host}:{port}/hook", generate_secret(), timeout=2)
            try:
                results[host] = channel.send_batch([Message(recipient_id=1, campaign_id=1, user_id="t", email=None,
                                                            content={"title": "t"})])[0]
            finally:
                channel.close()
    finally:
        sink.close()
    assert results["hooks.example.com"].outcome == "sent"
    assert sink.requests[0]["headers"]["Host"] == f"hooks.example.com:{port}"
    assert results["other.example.com"].outcome == "transient"  # the certificate is not for that name
    assert len(sink.requests) == 1
