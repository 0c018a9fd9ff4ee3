"""Decode, sniff and split a CSV upload, enforcing the size and row caps as it goes."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

from dashboard.inputs import text_problem

MAX_BYTES = 25 * 1024 * 1024
MAX_ROWS = 100_000
DELIMITERS = (",", ";", "\t")
USER_ID_ALIASES = {"userid", "user_id", "user id", "user-id"}
EMAIL_ALIASES = {"email", "e-mail", "email_address", "emailaddress"}


class CsvError(Exception):
    """The file as a whole cannot be used; nothing is imported."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class CsvTable:
    header: list[str]
    delimiter: str
    user_id_index: int
    email_index: int | None
    rows: Iterator[tuple[int, list[str]]]  # (spreadsheet row number, cells), blank lines skipped


def read_limited(stream, limit: int = MAX_BYTES) -> bytes:
    """Read at most limit bytes; one more means the file is too large (checked before parsing)."""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise CsvError(f"The file is larger than {limit // (1024 * 1024)} MB. Split it into smaller files.", 413)
    return data


def decode(data: bytes) -> str:
    if not data.strip():
        raise CsvError("The file is empty.")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise CsvError("The file is UTF-16 text. Save it as 'CSV UTF-8' and upload it again.")
    if b"\x00" in data[:8192]:  # an early NUL: binary; later ones are row errors (validation.py)
        raise CsvError("This looks like a binary file (a spreadsheet or an archive?), not CSV text. "
                       "Export it as CSV (UTF-8) and upload that.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise CsvError(f"The file is not UTF-8 text (invalid byte on line {line}). "
                       "Save it as 'CSV UTF-8' and upload it again.") from None


def sniff_delimiter(text: str) -> str:
    """Pick the delimiter that splits the header line into the most columns."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    best, best_count = ",", 1
    for delimiter in DELIMITERS:
        count = len(next(csv.reader([first], delimiter=delimiter), []))
        if count > best_count:
            best, best_count = delimiter, count
    return best


def _records(text: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    number = 0
    try:
        for cells in reader:
            number += 1
            yield number, cells
    except csv.Error as err:
        raise CsvError(f"Row {number + 1} cannot be read as CSV ({err}). Check the quotes on that row: "
                       'a quoted value must end with " before the next delimiter.') from None


def read_csv(data: bytes) -> CsvTable:
    text = decode(data)
    delimiter = sniff_delimiter(text)
    records = _records(text, delimiter)
    header: list[str] | None = None
    for _number, cells in records:
        if any(c.strip() for c in cells):
            header = [c.strip() for c in cells]
            break
    if header is None:
        raise CsvError("The file has no header row.")
    for index, name in enumerate(header):
        if problem := text_problem(name):
            raise CsvError(f"Column {index + 1} of the header row {problem}. Fix the header and upload again.")
    lowered = [h.lower() for h in header]
    user_cols = [i for i, h in enumerate(lowered) if h in USER_ID_ALIASES]
    if not user_cols:
        shown = ", ".join(h for h in header if h)[:200] or "(empty)"
        raise CsvError(f"No userId column. The first row must be a header with a 'userId' column "
                       f"(also accepted: user_id, userid); found: {shown}.")
    if len(user_cols) > 1:
        raise CsvError("More than one userId column in the header; keep exactly one.")
    seen: set[str] = set()
    for h in lowered:
        if h and h in seen:
            raise CsvError(f"The header has the column '{h}' twice; column names must be unique.")
        seen.add(h)
    email_cols = [i for i, h in enumerate(lowered) if h in EMAIL_ALIASES]

    def data_rows() -> Iterator[tuple[int, list[str]]]:
        count = 0
        for number, cells in records:
            if not any(c.strip() for c in cells):
                continue
            count += 1
            if count > MAX_ROWS:
                raise CsvError(f"The file has more than {MAX_ROWS:,} data rows. Split it into smaller files.", 413)
            yield number, cells

    return CsvTable(header=header, delimiter=delimiter, user_id_index=user_cols[0],
                    email_index=email_cols[0] if email_cols else None, rows=data_rows())
