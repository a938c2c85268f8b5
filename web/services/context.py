"""What the services need from the app, handed to them as one argument.

``create_app`` builds it once from the app's config and its runtime (:func:`from_config`); views
fetch it with :func:`web.db.services`. Nothing here reads Flask: a test or a script can build one
directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import Any

from forwarder.runtime import Runtime
from forwarder.settings import Settings


@dataclass(frozen=True)
class ServiceContext:
    runtime: Runtime
    #: signs the verification links (the app's SECRET_KEY)
    secret_key: str
    max_live_aliases: int = 200
    #: "host:port" of the resolver the domain checks ask; None: the system's resolvers
    dns_nameserver: str | None = None
    dns_timeout: float = 3.0
    #: how long a failing domain keeps taking new aliases before it is suspended
    domain_grace: timedelta = timedelta(hours=72)

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def uses_ses(self) -> bool:
        return self.settings.sender == "ses"

    @cached_property
    def sesv2(self) -> Any:
        """The SESv2 client for users' domains' identities, made once from the runtime's AWS
        session (tests hand the runtime an ``aws_session`` of their own)."""
        return self.runtime.aws_session.client("sesv2")


def from_config(config: Mapping[str, Any], runtime: Runtime) -> ServiceContext:
    """The context for a Flask app's ``config`` (read once, in ``create_app``)."""
    return ServiceContext(
        runtime=runtime,
        secret_key=config["SECRET_KEY"],
        max_live_aliases=int(config.get("MAX_LIVE_ALIASES", 200)),
        dns_nameserver=config.get("DNS_NAMESERVER") or None,
        dns_timeout=float(config.get("DNS_TIMEOUT", 3.0)),
        domain_grace=timedelta(hours=float(config.get("DOMAIN_GRACE_HOURS", 72))),
    )
