"""othermail's data layer: SQLAlchemy models and engine/session helpers.

Importing this package only defines the schema; it never connects to a
database or reads the environment.  Migrations live in the ``migrations``
package.
"""

from models.aliases import EXPIRED_ACTIONS, Alias, alias_destinations
from models.api_tokens import API_TOKEN_SCOPES, ApiToken
from models.base import Base, UTCDateTime, utcnow
from models.contacts import (
    CONTACT_ORIGINS,
    DISPLAY_FORMATS,
    RULE_ACTIONS,
    RULE_KINDS,
    SENDER_MODES,
    UNSUBSCRIBE_ACTIONS,
    Contact,
    MessageLink,
    SenderRule,
)
from models.deliveries import Delivery
from models.destinations import Destination
from models.engine import make_engine, make_session_factory
from models.feedback import FEEDBACK_KINDS, FeedbackEvent
from models.rate_limits import RateLimitHit
from models.sessions import SigninFailure, UserSession
from models.two_factor import RecoveryCode, WebAuthnCredential
from models.user_domains import DOMAIN_STATUSES, UserDomain
from models.users import User, normalize_email

__all__ = [
    "API_TOKEN_SCOPES",
    "CONTACT_ORIGINS",
    "DISPLAY_FORMATS",
    "DOMAIN_STATUSES",
    "EXPIRED_ACTIONS",
    "FEEDBACK_KINDS",
    "RULE_ACTIONS",
    "RULE_KINDS",
    "SENDER_MODES",
    "UNSUBSCRIBE_ACTIONS",
    "Alias",
    "ApiToken",
    "Base",
    "Contact",
    "Delivery",
    "Destination",
    "FeedbackEvent",
    "MessageLink",
    "RateLimitHit",
    "RecoveryCode",
    "SenderRule",
    "SigninFailure",
    "UTCDateTime",
    "User",
    "UserDomain",
    "UserSession",
    "WebAuthnCredential",
    "alias_destinations",
    "make_engine",
    "make_session_factory",
    "normalize_email",
    "utcnow",
]
