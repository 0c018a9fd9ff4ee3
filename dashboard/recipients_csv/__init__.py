"""Recipient CSV files: reader.py turns bytes into rows, validation.py rows into clean
recipients or row errors. No Flask and no database here."""

from dashboard.recipients_csv.reader import MAX_BYTES, MAX_ROWS, CsvError, CsvTable, read_csv
from dashboard.recipients_csv.validation import USER_ID_RE, ValidationResult, validate_rows

__all__ = ["MAX_BYTES", "MAX_ROWS", "USER_ID_RE", "CsvError", "CsvTable", "ValidationResult", "read_csv",
           "validate_rows"]
