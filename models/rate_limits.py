"""Fixed-window rate-limit counters shared by every web process."""

from __future__ import annotations

from sqlalchemy.orm import Mapped

from models import tables
from models.base import Base
from models.tables import KEY_MAX_LENGTH as KEY_MAX_LENGTH


class RateLimitHit(Base):
    """Hits counted for one key (e.g. ``"signin:203.0.113.7"``) in one window.

    ``window_start`` is the window's start in epoch seconds.  The composite
    primary key makes the first hit of a window an INSERT that at most one
    concurrent request wins; later hits are an atomic
    ``UPDATE ... SET count = count + 1``.  Rows of past windows are pruned
    by ``window_start`` (indexed).
    """

    __table__ = tables.rate_limit_hits

    key: Mapped[str]
    window_start: Mapped[int]
    count: Mapped[int]

    def __repr__(self) -> str:
        return f"<RateLimitHit key={self.key!r} window_start={self.window_start} count={self.count}>"
