"""/api/v1 campaign reports: the engagement report and the per-recipient engagement CSV."""

from __future__ import annotations

from flask import Response, jsonify, request, stream_with_context

from dashboard.access import ALL_ROLES, roles
from dashboard.api.common import bp
from dashboard.services import campaigns as campaign_service
from dashboard.services import reports


@bp.get("/campaigns/<int:campaign_id>/report")
@roles(*ALL_ROLES)
def campaign_report(campaign_id: int):
    bucket = reports.parse_bucket(request.args.get("bucket"))
    return jsonify(reports.report(campaign_service.get(campaign_id), bucket))


@bp.get("/campaigns/<int:campaign_id>/engagement.csv")
@roles(*ALL_ROLES)
def campaign_engagement_csv(campaign_id: int):
    campaign = campaign_service.get(campaign_id)
    return Response(stream_with_context(reports.engagement_csv_stream(campaign)), mimetype="text/csv",
                    headers={"Content-Disposition":
                             f'attachment; filename="campaign-{campaign.id}-engagement.csv"'})
