"""Fixed-window rate-limit counters shared by every web process."""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import MYSQL_TABLE_OPTIONS, Base

KEY_MAX_LENGTH = 200


class RateLimitHit(Base):
    """Hits counted for one key (e.g. ``"signin:203.0.113.7"``) in one window.

    ``window_start`` is the window's start in epoch seconds.  The composite
    primary key makes the first hit of a window an INSERT that at most one
    concurrent request wins; later hits are an atomic
    ``UPDATE ... SET count = count + 1``.  Rows of past windows are pruned
    by ``window_start`` (indexed).
    """

    __tablename__ = "rate_limit_hits"
    __table_args__ = (MYSQL_TABLE_OPTIONS,)

    key: Mapped[str] = mapped_column(String(KEY_MAX_LENGTH), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False, index=True)
    count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))

    def __repr__(self) -> str:
        return f"<RateLimitHit key={self.key!r} window_start={self.window_start} count={self.count}>"
