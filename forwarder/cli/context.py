"""What every CLI command shares: the settings, and the database built from them on demand."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from forwarder.runtime import Runtime
from forwarder.settings import Settings


def private_files() -> None:
    """From here on, files and folders this process creates (the SQLite database and its journal,
    raw mail, the spool, the outbox, the secret key) are its user's alone: umask 077."""
    os.umask(0o077)


@dataclass
class CliContext:
    settings: Settings
    _runtime: Runtime | None = field(default=None, repr=False)

    def runtime(self) -> Runtime:
        """What the command runs on, built from :attr:`settings` by the composition root
        (forwarder/runtime.py) on first use; a command that replaces the settings gets a new one."""
        if self._runtime is None or self._runtime.settings is not self.settings:
            private_files()
            self._runtime = Runtime.build(self.settings)
            self._runtime.prepare_data_dir()
        return self._runtime

    @property
    def database_url(self) -> str:
        return self.settings.resolved_database_url

    @property
    def safe_database_url(self) -> str:
        """The database URL to show: its password replaced by ``***``."""
        from sqlalchemy.engine import make_url

        return make_url(self.database_url).render_as_string(hide_password=True)

    def engine(self) -> Any:
        return self.runtime().engine

    def sessions(self) -> Any:
        return self.runtime().sessions
