"""The OpenAPI document of API v1: written by hand as the contract (openapi.yaml beside this
file), served as JSON; tests check it against the URL map and fuzz the app with it."""

from __future__ import annotations

import functools
import json
import os

import yaml
from flask import Response

from dashboard.access import ALL_ROLES, roles
from dashboard.api.common import bp

DOCUMENT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "openapi.yaml")


@functools.cache
def document() -> dict:
    """Parsed once per process: the file ships with the code."""
    with open(DOCUMENT_PATH, encoding="utf-8") as file:
        return yaml.safe_load(file)


@functools.cache
def _document_json() -> str:
    return json.dumps(document(), ensure_ascii=False)  # keys in the file's order, as readers expect


def document_response() -> Response:
    return Response(_document_json(), mimetype="application/json")


@bp.get("/openapi.json")
@roles(*ALL_ROLES)
def openapi_document():
    return document_response()
