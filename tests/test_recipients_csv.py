"""The malformed-CSV corpus (tests/data/csv) through the real upload API: each file gives
the exact row/column errors or one clear file error, and a failed import imports nothing."""

import io
from pathlib import Path

import pytest
from sqlalchemy import func, select

from dashboard.extensions import db
from dashboard.models import Campaign, Recipient
from tests.test_api_campaigns import make_template

CORPUS = Path(__file__).parent / "data" / "csv"
REQ = "required variable offer has no value (no cell value, campaign default or template default)"

FILE_ERRORS = {
    "wrong_encoding_latin1.csv": (400, "The file is not UTF-8 text (invalid byte on line 2)"),
    "utf16.csv": (400, "The file is UTF-16 text"),
    "binary_xlsx.csv": (400, "This looks like a binary file"),
    "binary_png.csv": (400, "This looks like a binary file"),
    "empty.csv": (400, "The file is empty."),
    "only_blank_lines.csv": (400, "The file is empty."),
    "no_header_data_only.csv": (400, "No userId column. The first row must be a header"),
    "no_userid_column.csv": (400, "found: id, offer"),
    "two_userid_columns.csv": (400, "More than one userId column"),
    "duplicate_header.csv": (400, "The header has the column 'offer' twice"),
    "unclosed_quote.csv": (400, "Row 3 cannot be read as CSV"),
    "stray_quote.csv": (400, "Row 2 cannot be read as CSV"),
    "control_char_header.csv": (400, "Column 2 of the header row contains a control character (U+0007)"),
}
CONTROL = "contains a control character"

ROW_RESULTS = {
    # file: (accepted, rejected, [(row, column, message)], warning fragment or None)
    "header_only.csv": (0, 0, [], "no data rows"),
    "ragged_more_fields.csv": (1, 1, [(3, None, "has 3 values but the header has 2 columns")], None),
    "ragged_fewer_fields.csv": (1, 1, [(3, None, "has 2 values but the header has 3 columns")], None),
    "formula_cells.csv": (2, 0, [], None),
    "quotes_embedded.csv": (2, 1, [(4, "userId", '"bad id" is not a valid userId (1-128 characters: '
                                                 'letters, digits and _ - . @ :)')], None),
    "bom.csv": (1, 0, [], None),
    "semicolon.csv": (2, 0, [], None),
    "tab.csv": (2, 0, [], None),
    "duplicate_ids.csv": (2, 0, [], "2 duplicate userId rows merged; the later row wins"),
    "invalid_ids.csv": (1, 3, [(3, "userId", '"bad id" is not a valid userId'),
                               (4, "userId", '"a/b" is not a valid userId'),
                               (5, "userId", "is not a valid userId")], None),
    "empty_userid.csv": (1, 1, [(2, "userId", "userId is empty")], None),
    "missing_required.csv": (1, 1, [(2, "offer", REQ)], None),
    "missing_required_no_column.csv": (0, 1, [(2, "offer", REQ)], None),
    "bad_image_url.csv": (1, 1, [(2, "banner", "banner must be an http(s) URL")], None),
    "bad_action_url.csv": (1, 1, [(2, "cta", "cta must be an http(s) URL")], None),
    "bad_email.csv": (1, 1, [(2, "email", '"not-an-email" is not a valid email address')], None),
    "unknown_columns.csv": (1, 0, [], "Unknown columns ignored: age, city"),
    "crlf.csv": (2, 0, [], None),
    "header_alias_case.csv": (1, 0, [], None),
    "blank_lines_between.csv": (1, 1, [(6, "userId", '"bad id" is not a valid userId')], None),
    "html_injection.csv": (2, 0, [], None),
    "whitespace_padding.csv": (1, 0, [], None),
    "many_errors_one_row.csv": (0, 1, [(2, "userId", '"bad id" is not a valid userId'),
                                       (2, "email", '"nope" is not a valid email address'),
                                       (2, "banner", "banner must be an http(s) URL"),
                                       (2, "offer", REQ)], None),
    "control_chars.csv": (2, 3, [(3, "offer", f"{CONTROL} (U+000B)"), (4, "userId", f"{CONTROL} (U+0001)"),
                                 (5, "firstName", f"{CONTROL} (U+001B)")], None),
    "nul_after_8kb.csv": (400, 1, [(402, "offer", f"{CONTROL} (U+0000)")], None),
}


def test_corpus_is_complete():
    files = {p.name for p in CORPUS.glob("*.csv")}
    assert files == set(FILE_ERRORS) | set(ROW_RESULTS)
    assert len(files) + 2 >= 30  # plus the two generated huge files below


@pytest.fixture
def upload(client, api_key):
    make_template()
    headers = {"Authorization": f"Bearer {api_key('marketer')}"}
    cid = client.post("/api/v1/campaigns", json={"name": "c", "templateId": "promo"}, headers=headers).get_json()["id"]

    def send(data: bytes, query: str = "?dryRun=true"):
        return client.post(f"/api/v1/campaigns/{cid}/recipients/upload{query}", headers=headers,
                           data={"file": (io.BytesIO(data), "upload.csv")}, content_type="multipart/form-data")
    return send


def _recipient_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Recipient))


@pytest.mark.parametrize("name", sorted(FILE_ERRORS))
def test_unreadable_file_is_one_clear_error(upload, name):
    status, fragment = FILE_ERRORS[name]
    data = (CORPUS / name).read_bytes()
    for query in ("?dryRun=true", "", "?skipInvalid=true"):
        response = upload(data, query)
        assert response.status_code == status
        error = response.get_json()["error"]
        assert fragment in error["message"], error["message"]
        assert "Traceback" not in error["message"]
    assert _recipient_count() == 0


@pytest.mark.parametrize("name", sorted(ROW_RESULTS))
def test_row_level_results(upload, name):
    accepted, rejected, errors, warning = ROW_RESULTS[name]
    data = (CORPUS / name).read_bytes()
    body = upload(data).get_json()
    assert (body["accepted"], body["rejected"], body["imported"]) == (accepted, rejected, 0)
    got = [(e["row"], e["column"], e["message"]) for e in body["errors"]]
    assert len(got) == len(errors)
    for (row, column, message), (g_row, g_column, g_message) in zip(errors, got, strict=True):
        assert (row, column) == (g_row, g_column)
        assert message in g_message
    if warning:
        assert any(warning in w["message"] for w in body["warnings"]), body["warnings"]
    assert _recipient_count() == 0  # a dry run imports nothing
    response = upload(data, "")
    if rejected:
        assert response.status_code == 400
        assert response.get_json()["error"]["code"] == "invalid_rows"
        assert _recipient_count() == 0  # all-or-nothing
        response = upload(data, "?skipInvalid=true")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["imported"] == accepted
    assert _recipient_count() == accepted


def test_values_survive_quotes_delimiters_and_merges(upload):
    upload((CORPUS / "quotes_embedded.csv").read_bytes(), "?skipInvalid=true")
    upload((CORPUS / "duplicate_ids.csv").read_bytes(), "")
    upload((CORPUS / "semicolon.csv").read_bytes(), "")
    rows = {r.user_id: r.variables for r in db.session.scalars(select(Recipient))}
    assert rows["u1"] == {"offer": "10,5%", "firstName": "Ann"}  # the semicolon file came last
    assert rows["u2"]["offer"] == "x"
    db.session.execute(Recipient.__table__.delete())
    db.session.commit()
    upload((CORPUS / "quotes_embedded.csv").read_bytes(), "?skipInvalid=true")
    rows = {r.user_id: r.variables for r in db.session.scalars(select(Recipient))}
    assert rows == {"u1": {"offer": "a, b", "firstName": "multi\nline"}, "u2": {"offer": 'say "hi"', "firstName": "Bo"}}


def test_duplicates_later_row_wins(upload):
    upload((CORPUS / "duplicate_ids.csv").read_bytes(), "")
    assert db.session.scalar(select(Recipient.variables).where(Recipient.user_id == "u1")) == {"offer": "third"}


def test_sample_renders_first_rows_with_template(upload):
    body = upload(b"userId,offer,firstName\nu1,20% off,Ann\nu2,free ship,\n").get_json()
    assert body["sample"][0] == {"userId": "u1", "variables": {"offer": "20% off", "firstName": "Ann"},
                                 "rendered": {"title": "Hi Ann", "body": "20% off "}}
    assert body["sample"][1]["rendered"]["title"] == "Hi there"  # the template default


def test_more_than_100000_rows_is_413(upload):
    data = b"userId,offer\n" + b"".join(b"u%d,x\n" % i for i in range(100_001))
    response = upload(data)
    assert response.status_code == 413
    assert "more than 100,000 data rows" in response.get_json()["error"]["message"]
    assert upload(data, "").status_code == 413
    assert _recipient_count() == 0


def test_exactly_100000_rows_is_accepted(upload):
    data = b"userId,offer\n" + b"".join(b"u%d,x\n" % i for i in range(100_000))
    body = upload(data).get_json()
    assert (body["accepted"], body["rejected"]) == (100_000, 0)


@pytest.mark.parametrize("size", [25 * 1024 * 1024 + 10, 27 * 1024 * 1024])
def test_over_25_mb_is_413_before_parsing(upload, size):
    line = b"u1,xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"
    data = (b"userId,offer\n" + line * (size // len(line) + 1))[:size]
    response = upload(data)
    assert response.status_code == 413
    assert "25 MB" in response.get_json()["error"]["message"]
    assert _recipient_count() == 0


def test_missing_file_field(client, upload, api_key):
    headers = {"Authorization": f"Bearer {api_key('marketer')}"}
    cid = client.get("/api/v1/campaigns", headers=headers).get_json()["items"][0]["id"]
    response = client.post(f"/api/v1/campaigns/{cid}/recipients/upload", headers=headers, data={})
    assert response.status_code == 400 and "'file'" in response.get_json()["error"]["message"]


def test_control_characters_anywhere_in_the_file_are_row_errors_in_the_dashboard_preview(client, logged_in, upload):
    """The whole file, not only its first 8 KB; the preview names row and column, the rejected
    rows download keeps the cell as it was, and confirm imports only the clean rows."""
    import re

    from tests.conftest import csrf_from

    logged_in("marketer")
    cid = db.session.scalar(select(Campaign.id))
    token = csrf_from(client.get(f"/campaigns/{cid}").get_data(as_text=True))
    data = (CORPUS / "nul_after_8kb.csv").read_bytes()
    assert data.index(b"\x00") > 8192
    html = client.post(f"/campaigns/{cid}/upload", data={"csrf_token": token, "file": (io.BytesIO(data), "l.csv")},
                       content_type="multipart/form-data").get_data(as_text=True)
    assert "400 ready to import" in html and "1 row rejected" in html
    assert re.search(r'<td class="num">402</td><td class="mono">offer</td><td>contains a control character '
                     r"\(U\+0000\)", html)
    staged = re.search(r"/uploads/([^/]+)/confirm", html).group(1)
    rejected = client.get(f"/campaigns/{cid}/uploads/{staged}/rejected.csv").get_data(as_text=True)
    assert rejected.splitlines()[1].startswith("late,a\x00b,contains a control character (U+0000)")
    client.post(f"/campaigns/{cid}/uploads/{staged}/confirm", data={"csrf_token": token})
    assert _recipient_count() == 400
    assert db.session.scalar(select(Recipient.id).where(Recipient.user_id == "late")) is None


def test_users_csv_import_skips_rows_with_control_characters(client, logged_in):
    from dashboard.models import User
    from tests.conftest import csrf_from

    logged_in("marketer")
    token = csrf_from(client.get("/users").get_data(as_text=True))
    data = b"userId,name,email\nu1,Ann,a@x.test\nu2,B\x1bo,b@x.test\n"
    response = client.post("/users/import", data={"csrf_token": token, "file": (io.BytesIO(data), "users.csv")},
                           content_type="multipart/form-data")
    review = response.headers["Location"]
    preview = client.get(review).get_data(as_text=True)  # the preview names the bad row; nothing saved yet
    assert "contains a control character (U+001B)" in preview
    assert db.session.scalars(select(User.user_id)).all() == []
    done = client.post(review, data={"csrf_token": token})
    page = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "1 new" in page and "row 3: name contains a control character (U+001B)" in page
    assert db.session.scalars(select(User.user_id)).all() == ["u1"]
