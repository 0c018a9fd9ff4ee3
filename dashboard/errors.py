"""AppError hierarchy raised by services, and the handlers that turn errors into
a page, an HTMX fragment or the JSON envelope of SPEC §8."""

from __future__ import annotations

import redis
from flask import Flask, jsonify, make_response, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from dashboard.extensions import db


class AppError(Exception):
    status = 400
    code = "bad_request"
    title = "Something is wrong with that request"

    def __init__(self, message: str | None = None, details: list | None = None):
        super().__init__(message or self.title)
        self.message = message or self.title
        self.details = details or []


class ValidationError(AppError):
    code = "validation_error"
    title = "Please fix the highlighted problems"


class FieldErrors:
    """Problems collected by field while a body is checked whole, raised as one ValidationError
    whose message names the first and counts the rest."""

    def __init__(self):
        self.items: list[dict] = []

    def add(self, field: str, message: str) -> None:
        self.items.append({"field": field, "message": message})

    def raise_if_any(self) -> None:
        if self.items:
            first = self.items[0]
            summary = f"{first['field']}: {first['message']}"
            if len(self.items) > 1:
                summary += f" (and {len(self.items) - 1} more problem{'s' if len(self.items) > 2 else ''})"
            raise ValidationError(summary, self.items)


class Unauthorized(AppError):
    status = 401
    code = "unauthorized"
    title = "Authentication required"


class Forbidden(AppError):
    status = 403
    code = "forbidden"
    title = "You don't have access to this"


class NotFound(AppError):
    status = 404
    code = "not_found"
    title = "Not found"


class LifecycleError(AppError):
    status = 409
    code = "conflict"
    title = "That is not possible in the current status"


class TooLarge(AppError):
    status = 413
    code = "too_large"
    title = "Too large"


class RateLimited(AppError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"


_TITLES = {
    400: "Bad request",
    401: "Please sign in",
    403: "You don't have access to this page",
    404: "Page not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Upload too large",
    422: "Request conflicts with an earlier one",
    429: "Too many requests",
    500: "Something went wrong on our side",
    503: "Temporarily unavailable",
}

_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 409: "conflict", 413: "too_large",
          429: "rate_limited", 500: "internal_error", 503: "unavailable"}


def wants_json() -> bool:
    return request.path.startswith(("/api/", "/inbox/")) or request.path == "/healthz"


def error_response(status: int, message: str, code: str | None = None, details=None):
    code = code or _CODES.get(status, "error")
    if wants_json():
        body = {"error": {"code": code, "message": message, "details": details or []}}
        return jsonify(body), status
    template = "errors/_error.html" if request.headers.get("HX-Request") else "errors/error.html"
    html = render_template(template, status=status, title=_TITLES.get(status, "Error"),
                           message=message, details=details or [])
    return html, status


def is_unique_violation(err: IntegrityError) -> bool:
    """PostgreSQL's unique_violation (23505) or SQLite's UNIQUE constraint failure."""
    return getattr(err.orig, "sqlstate", None) == "23505" or "UNIQUE constraint failed" in str(err.orig)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(AppError)
    def _app_error(err: AppError):
        return error_response(err.status, err.message, err.code, err.details)

    @app.errorhandler(CSRFError)
    def _csrf_error(err: CSRFError):
        return error_response(
            400,
            "Your form expired or was missing its security token. Reload the page and try again.",
            "csrf_failed",
        )

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException):
        status = err.code or 500
        messages = {
            404: "We couldn't find what you were looking for.",
            405: "That action isn't available here.",
            413: "The upload is larger than the allowed maximum (25 MB).",
        }
        response = make_response(error_response(status, messages.get(status, err.description or "")))
        if isinstance(err, MethodNotAllowed) and err.valid_methods:
            response.headers["Allow"] = ", ".join(err.valid_methods)
        return response

    @app.errorhandler(IntegrityError)
    def _unique_race(err: IntegrityError):
        """A concurrent request took the same unique key first; anything else is a bug (500)."""
        if not is_unique_violation(err):
            return _unexpected(err)
        db.session.rollback()
        app.logger.warning("unique key taken by a concurrent request: %s", err.orig)
        return error_response(409, "Another request changed the same thing at the same moment; "
                                   "nothing was changed by this one. Reload and try again.")

    @app.errorhandler(redis.exceptions.ConnectionError)
    @app.errorhandler(redis.exceptions.TimeoutError)
    def _redis_down(err: redis.exceptions.RedisError):
        """Raised before anything changed (a change that committed answers for itself)."""
        app.logger.warning("Redis unavailable: %s", err)
        return error_response(503, "The job queue (Redis) is not answering; nothing was changed. Try again shortly.")

    @app.errorhandler(Exception)
    def _unexpected(err: Exception):
        app.logger.exception("unhandled error")
        return error_response(500, "An unexpected error happened. It has been logged; please try again.")
