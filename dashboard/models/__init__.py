"""One module per aggregate; importing this package registers every table."""

from dashboard.models.account import Account, AccountSession, ApiKey, Role
from dashboard.models.audit import AuditEvent
from dashboard.models.base import utcnow
from dashboard.models.campaign import (
    Campaign,
    CampaignChunk,
    CampaignStatus,
    CampaignWave,
    Channel,
    DeliveryMode,
    Recipient,
    RecipientStatus,
)
from dashboard.models.channel import ChannelConfig
from dashboard.models.notification import Notification
from dashboard.models.template import Template, TemplateStatus, TemplateVersion
from dashboard.models.user import LinkClick, ListMember, Segment, User, UserAttribute, UserList
from dashboard.models.workspace import WorkspaceSetting

__all__ = ["Account", "AccountSession", "ApiKey", "AuditEvent", "Campaign", "CampaignChunk", "CampaignStatus",
           "CampaignWave", "Channel", "ChannelConfig", "DeliveryMode", "Notification", "Recipient", "RecipientStatus",
           "Role", "LinkClick", "ListMember", "Segment", "UserAttribute", "UserList",
           "Template", "TemplateStatus", "TemplateVersion", "User", "WorkspaceSetting", "utcnow"]
