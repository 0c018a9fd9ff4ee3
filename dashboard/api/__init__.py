"""/api/v1: thin JSON views over the same services as the dashboard."""

from dashboard.api import (  # noqa: F401  (register routes)
    accounts,
    campaigns,
    channels,
    inbox,
    lists,
    openapi,
    reports,
    segments,
    settings,
    templates,
    users,
)
from dashboard.api.common import bp

__all__ = ["bp"]
