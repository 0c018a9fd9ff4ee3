"""/api/v1: thin JSON views over the same services as the dashboard."""

from dashboard.api import accounts, campaigns, channels, lists, openapi, reports, segments, settings, templates, users  # noqa: F401  (register routes)
from dashboard.api.common import bp

__all__ = ["bp"]
