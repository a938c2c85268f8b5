"""othermail's data layer: SQLAlchemy models and engine/session helpers.

Importing this package only defines the schema; it never connects to a
database or reads the environment.  Migrations live in the ``migrations``
package.
"""

from models.aliases import Alias, alias_destinations
from models.base import Base, UTCDateTime, utcnow
from models.deliveries import Delivery
from models.destinations import Destination
from models.engine import make_engine, make_session_factory
from models.users import User, normalize_email

__all__ = [
    "Alias",
    "Base",
    "Delivery",
    "Destination",
    "UTCDateTime",
    "User",
    "alias_destinations",
    "make_engine",
    "make_session_factory",
    "normalize_email",
    "utcnow",
]
