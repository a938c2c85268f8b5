"""What every CLI command shares: the settings, and the database built from them on demand."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from forwarder.settings import Settings


def private_files() -> None:
    """From here on, files and folders this process creates (the SQLite database and its journal,
    raw mail, the spool, the outbox, the secret key) are its user's alone: umask 077."""
    os.umask(0o077)


@dataclass
class CliContext:
    settings: Settings
    _engine: Any = field(default=None, repr=False)

    @property
    def database_url(self) -> str:
        return self.settings.resolved_database_url

    @property
    def safe_database_url(self) -> str:
        """The database URL to show: its password replaced by ``***``."""
        from sqlalchemy.engine import make_url

        return make_url(self.database_url).render_as_string(hide_password=True)

    def engine(self) -> Any:
        from models import make_engine

        if self._engine is None:
            private_files()
            if self.database_url.startswith("sqlite:///"):
                self.settings.data_dir.mkdir(parents=True, exist_ok=True)
            self._engine = make_engine(self.database_url)
        return self._engine

    def sessions(self) -> Any:
        from models import make_session_factory

        return make_session_factory(self.engine())
