"""Secrets from AWS Secrets Manager or SSM Parameter Store, read once at the edge.

On Lambda (the forwarder, the zappa-packaged web app) the database URL with its password and the
web app's secret key must not sit in the function's plain environment. Two variables name where
they are instead; either, both or neither may be set:

``OTHERMAIL_SSM_PATH``
    A Parameter Store path such as ``/othermail/production``. Every parameter directly under it
    is read (``GetParametersByPath``, ``WithDecryption``, so ``SecureString`` values arrive
    decrypted); the last part of a parameter's name is the variable it sets, e.g.
    ``/othermail/production/OTHERMAIL_DATABASE_URL``.
``OTHERMAIL_SECRETS_ARN``
    A Secrets Manager secret (ARN or name) whose ``SecretString`` is a JSON object of
    ``OTHERMAIL_*`` variables, e.g. ``{"OTHERMAIL_DATABASE_URL": "mysql+pymysql://...",
    "OTHERMAIL_WEB_SECRET_KEY": "..."}``.

What is fetched overlays the plain environment (environment < SSM < Secrets Manager); only
``OTHERMAIL_*`` names are accepted. With neither variable set nothing is fetched and boto3 is not
even imported. Any failure (no permission, no such secret, malformed JSON, an empty path) raises
``SettingsError`` naming the source, so a cold start fails with a message an operator can act on.

The function's role needs ``secretsmanager:GetSecretValue`` on the secret, or
``ssm:GetParametersByPath`` on the path (plus ``kms:Decrypt`` for a customer-managed key).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from forwarder.errors import SettingsError

PREFIX = "OTHERMAIL_"
SECRETS_ARN = "OTHERMAIL_SECRETS_ARN"
SSM_PATH = "OTHERMAIL_SSM_PATH"
#: Names that say where secrets are; a fetched source may not set them (no chains).
_SOURCES = (SECRETS_ARN, SSM_PATH)


def _region(environ: Mapping[str, str], arn: str = "") -> str | None:
    """The region of an ARN (``arn:aws:secretsmanager:REGION:...``), else the configured one."""
    parts = arn.split(":")
    if len(parts) > 4 and parts[0] == "arn" and parts[3]:
        return parts[3]
    return environ.get(PREFIX + "AWS_REGION") or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None


def _client(service: str, region: str | None, session: Any) -> Any:
    if session is None:
        import boto3

        session = boto3.session.Session()
    return session.client(service, region_name=region)


def _check(source: str, name: str, value: Any) -> tuple[str, str]:
    if not isinstance(name, str) or not name.startswith(PREFIX) or name in _SOURCES:
        raise SettingsError(f"{source}: {name!r} is not an OTHERMAIL_* setting (see docs/configuration.md)")
    if isinstance(value, bool):
        return name, "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return name, str(value)
    raise SettingsError(f"{source}: {name} must be a string, not {type(value).__name__}")


def _aws_failure(source: str, exc: Exception) -> SettingsError:
    return SettingsError(f"could not read the secrets from {source}: {exc}")


def from_secrets_manager(secret_id: str, environ: Mapping[str, str], session: Any = None) -> dict[str, str]:
    """The ``OTHERMAIL_*`` values of a Secrets Manager secret holding a JSON object."""
    source = f"Secrets Manager secret {secret_id} ({SECRETS_ARN})"
    try:
        response = _client("secretsmanager", _region(environ, secret_id), session).get_secret_value(SecretId=secret_id)
    except Exception as exc:  # botocore's ClientError, NoCredentialsError, EndpointConnectionError...
        raise _aws_failure(source, exc) from exc
    text = response.get("SecretString")
    if text is None:
        raise SettingsError(f"{source} is binary; store a JSON object of OTHERMAIL_* values as its SecretString")
    try:
        values = json.loads(text)
    except ValueError as exc:
        raise SettingsError(f"{source} is not JSON: {exc}") from None
    if not isinstance(values, dict):
        raise SettingsError(f"{source} must hold a JSON object of OTHERMAIL_* values, not {type(values).__name__}")
    return dict(_check(source, name, value) for name, value in values.items())


def from_ssm(path: str, environ: Mapping[str, str], session: Any = None) -> dict[str, str]:
    """The parameters directly under an SSM Parameter Store path, decrypted."""
    source = f"SSM Parameter Store path {path} ({SSM_PATH})"
    if not path.startswith("/"):
        raise SettingsError(f"{SSM_PATH} must be a parameter path starting with '/', not {path!r}")
    values: dict[str, str] = {}
    try:
        pages = (
            _client("ssm", _region(environ), session)
            .get_paginator("get_parameters_by_path")
            .paginate(Path=path, Recursive=False, WithDecryption=True)
        )
        parameters = [parameter for page in pages for parameter in page.get("Parameters", [])]
    except Exception as exc:
        raise _aws_failure(source, exc) from exc
    for parameter in parameters:
        name, value = _check(source, parameter["Name"].rsplit("/", 1)[-1], parameter["Value"])
        values[name] = value
    if not values:
        raise SettingsError(f"{source} holds no parameters; expected e.g. {path.rstrip('/')}/OTHERMAIL_DATABASE_URL")
    return values


def fetch_secrets(environ: Mapping[str, str] | None = None, session: Any = None) -> dict[str, str]:
    """The ``OTHERMAIL_*`` values the environment points at: {} when it points at none.

    ``session`` is a ``boto3.session.Session`` (tests); by default one is made on first use.
    """
    env = os.environ if environ is None else environ
    fetched: dict[str, str] = {}
    path = (env.get(SSM_PATH) or "").strip()
    if path:
        fetched.update(from_ssm(path, env, session))
    secret_id = (env.get(SECRETS_ARN) or "").strip()
    if secret_id:
        fetched.update(from_secrets_manager(secret_id, env, session))
    return fetched


def environ_with_secrets(environ: Mapping[str, str] | None = None, session: Any = None) -> dict[str, str]:
    """A copy of the environment with the fetched secrets laid over it, for ``Settings.from_env``."""
    env = os.environ if environ is None else environ
    return {**env, **fetch_secrets(env, session)}
