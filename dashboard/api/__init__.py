"""/api/v1: thin JSON views over the same services as the dashboard."""

from dashboard.api import campaigns  # noqa: F401  (registers its routes on bp)
from dashboard.api.common import bp

__all__ = ["bp"]
