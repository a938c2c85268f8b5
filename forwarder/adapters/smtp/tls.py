"""STARTTLS for the SMTP listener: a server SSLContext from ``OTHERMAIL_SMTP_TLS_CERT`` / ``_KEY``,
rebuilt when either file changes.

Certificates are renewed in place (certbot, an ACME client, an operator's copy), so the listener
checks the two files' status (modification time, size, inode: a rename onto the path counts) each
time a new connection asks for the context and builds a new one when they changed; a running
session keeps the context it started with. A pair that does not load (a half-written renewal,
a key that does not match) keeps the last good context and is logged; at start-up it is a
:class:`~forwarder.errors.SettingsError` naming the variable.

The context offers TLS 1.2 and later and asks nothing of the client (no client certificates):
mail servers connect with self-signed or no certificates, and opportunistic TLS beats plain text.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from pathlib import Path

from forwarder.errors import SettingsError

logger = logging.getLogger("othermail.smtp")


def _signature(path: Path) -> tuple[int, int, int]:
    status = os.stat(path)
    return status.st_mtime_ns, status.st_size, status.st_ino


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    return context


class TlsReloader:
    def __init__(self, cert: Path, key: Path) -> None:
        self.cert = Path(cert)
        self.key = Path(key)
        self._lock = threading.Lock()
        try:
            self._seen = (_signature(self.cert), _signature(self.key))
        except OSError as exc:
            which = "OTHERMAIL_SMTP_TLS_CERT" if not self.cert.exists() else "OTHERMAIL_SMTP_TLS_KEY"
            raise SettingsError(f"{which}: cannot read {exc.filename}: {exc.strerror}") from None
        try:
            self._context = server_context(self.cert, self.key)
        except (ssl.SSLError, OSError) as exc:
            raise SettingsError(
                f"OTHERMAIL_SMTP_TLS_CERT / OTHERMAIL_SMTP_TLS_KEY: {self.cert} and {self.key} "
                f"are not a PEM certificate and its private key ({exc})"
            ) from None
        #: How many times the context was rebuilt after a change (for the operator and the tests).
        self.reloads = 0

    def context(self) -> ssl.SSLContext:
        """The current context, rebuilt first when a file changed since the last look."""
        try:
            seen = (_signature(self.cert), _signature(self.key))
        except OSError as exc:
            logger.warning("STARTTLS: cannot read %s (%s); keeping the last certificate", exc.filename, exc.strerror)
            return self._context
        with self._lock:
            if seen != self._seen:
                try:
                    self._context = server_context(self.cert, self.key)
                    self.reloads += 1
                    logger.info("STARTTLS: certificate %s reloaded", self.cert)
                except (ssl.SSLError, OSError) as exc:
                    logger.warning(
                        "STARTTLS: %s and %s do not load (%s); keeping the last certificate", self.cert, self.key, exc
                    )
                self._seen = seen  # a broken pair is tried again when it changes again
            return self._context
