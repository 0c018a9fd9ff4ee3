from __future__ import annotations

from flask import jsonify

from dashboard.access import ALL_ROLES, roles
from dashboard.api.common import bp


@bp.get("/campaigns")
@roles(*ALL_ROLES)
def campaign_list():
    # Campaigns arrive with the campaign-drafts issue; until then the list is empty.
    return jsonify({"items": [], "nextCursor": None})
