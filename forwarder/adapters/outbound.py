"""Build the outbound sender the settings ask for; the one place that maps configuration to a sender.

    OTHERMAIL_SENDER=outbox   MaildirSender(OTHERMAIL_OUTBOX)                  one-box default
    OTHERMAIL_SENDER=smtp     SmtpSender(OTHERMAIL_RELAY_HOST, _PORT, _SECURITY, _USERNAME, ...)
    OTHERMAIL_SENDER=ses      SesV2Sender, or SesV1Sender with OTHERMAIL_SES_API=v1   Lambda default

The Lambda, the CLI and the web app's own mail all call :func:`build_sender`, so a setting means the
same everywhere. Nothing connects here: the SMTP sender connects on its first send, and boto3 clients
connect on their first call.
"""

from __future__ import annotations

from typing import Any

from forwarder.adapters.aws.ses import SesV1Sender, SesV2Sender
from forwarder.adapters.senders import MaildirSender
from forwarder.adapters.smtp.sender import SmtpSender
from forwarder.errors import SettingsError
from forwarder.ports import Sender
from forwarder.settings import Settings


def build_sender(settings: Settings, aws_session: Any = None) -> Sender:
    """The sender for ``settings.sender``. ``aws_session`` (a ``boto3.session.Session``) is used for
    SES when given; otherwise one is made for ``settings.aws_region``."""
    if settings.sender == "outbox":
        return MaildirSender(settings.outbox)
    if settings.sender == "smtp":
        if not settings.relay_host:
            raise SettingsError("OTHERMAIL_SENDER=smtp needs OTHERMAIL_RELAY_HOST, the relay's host name")
        return SmtpSender(
            settings.relay_host,
            settings.relay_port,
            settings.relay_security,
            settings.relay_username,
            settings.relay_password,
            timeout=settings.relay_timeout_seconds,
        )
    if settings.sender == "ses":
        if aws_session is None:
            import boto3

            aws_session = boto3.session.Session(region_name=settings.aws_region)
        if settings.ses_api == "v1":
            return SesV1Sender(aws_session.client("ses"), settings.ses_configuration_set)
        return SesV2Sender(aws_session.client("sesv2"), settings.ses_configuration_set)
    raise SettingsError(f"OTHERMAIL_SENDER must be one of ses, outbox, smtp, not {settings.sender!r}")
