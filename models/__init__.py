"""othermail's data layer: SQLAlchemy models and engine/session helpers.

Importing this package only defines the schema; it never connects to a
database or reads the environment.  Migrations live in the ``migrations``
package.

The models (and ``sqlalchemy.orm`` with them) are loaded on first use of one of the names below
(``from models import Alias``, ``models.Base``), not by ``import models`` itself: what SQL written
with SQLAlchemy Core needs, ``models.columns``, ``models.limits`` and ``models.engine``, loads
SQLAlchemy Core only, so the forwarder's hot path can do without the ORM (issue 15: the Lambda's
cold start pays for every import). ``models.Base.metadata`` is always the whole schema, and
whichever module a model is first imported from, every model is defined before the ORM configures
any (``models.base``).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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


#: The modules that define the schema, in the order the package imported them.
_MODULES = (
    "models.aliases",
    "models.api_tokens",
    "models.base",
    "models.contacts",
    "models.deliveries",
    "models.destinations",
    "models.engine",
    "models.feedback",
    "models.rate_limits",
    "models.sessions",
    "models.two_factor",
    "models.user_domains",
    "models.users",
)


#: The modules that load SQLAlchemy Core only (no model, no ``sqlalchemy.orm``).
_CORE_MODULES = frozenset({"columns", "limits", "tables"})


def load_all() -> None:
    """Define every model (every table on ``Base.metadata``) and bind this package's names."""
    namespace = globals()
    for name in _MODULES:
        # the import statement's path, not importlib.import_module: `python -X importtime` (which
        # bench/coldstart.py reads) times only the former, and would charge the models to the caller
        __import__(name)
        module = sys.modules[name]
        for exported in __all__:
            if exported not in namespace and hasattr(module, exported):
                namespace[exported] = getattr(module, exported)


def __getattr__(name: str) -> Any:
    """A name of this package (or a submodule of it), once every model is loaded."""
    if name.startswith("__"):
        raise AttributeError(name)
    if name in _CORE_MODULES:
        # ``from models import tables`` (a model module's own import): the submodule alone, since
        # loading every model here would meet the importing model half-defined
        __import__(f"models.{name}")
        return sys.modules[f"models.{name}"]
    load_all()
    try:
        return globals()[name]
    except KeyError:
        raise AttributeError(f"module 'models' has no attribute {name!r}") from None
