"""/api/v1: thin JSON views over the same services as the dashboard."""

from dashboard.api import accounts, campaigns, channels, templates, users  # noqa: F401  (register their routes on bp)
from dashboard.api.common import bp

__all__ = ["bp"]
