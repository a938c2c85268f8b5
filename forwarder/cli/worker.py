"""``othermail worker``: the queue worker of the EC2 mode (SES -> S3 + SNS -> SQS -> here)."""

from __future__ import annotations

import json
import logging
import signal
import threading
from typing import Any

import click

from forwarder.cli.context import CliContext
from forwarder.errors import SettingsError
from forwarder.settings import Settings


def _describe_queue(sqs: Any, queue_url: str) -> str:
    """Check the queue answers, and say where its failures end up."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        attributes = sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["RedrivePolicy", "VisibilityTimeout"]
        ).get("Attributes", {})
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise click.ClickException(
            f"the queue {queue_url} (OTHERMAIL_QUEUE_URL) cannot be used: {error.get('Code')}: {error.get('Message')}"
        ) from exc
    except BotoCoreError as exc:
        raise click.ClickException(f"the queue {queue_url} (OTHERMAIL_QUEUE_URL) cannot be reached: {exc}") from exc
    visibility = attributes.get("VisibilityTimeout", "?")
    try:
        redrive = json.loads(attributes.get("RedrivePolicy") or "{}")
    except ValueError:
        redrive = {}
    if redrive.get("deadLetterTargetArn"):
        dlq = f"dead-letter queue {redrive['deadLetterTargetArn']} after {redrive.get('maxReceiveCount')} receives"
    else:
        dlq = "no dead-letter queue (failing messages come back until the retention period ends)"
    return f"visibility {visibility} s, {dlq}"


@click.command()
@click.option("--once", is_flag=True, help="Receive and process one batch, then exit.")
@click.option("--queue-url", help="The SQS queue to read (default: OTHERMAIL_QUEUE_URL).")
@click.option(
    "--wait-seconds",
    type=click.IntRange(0, 20),
    help="Long-poll wait of each receive (default: OTHERMAIL_QUEUE_WAIT_SECONDS, 20).",
)
@click.option("--batch", default=10, show_default=True, type=click.IntRange(1, 10), help="Messages received at a time.")
@click.pass_obj
def worker(obj: CliContext, once: bool, queue_url: str | None, wait_seconds: int | None, batch: int) -> None:
    """Forward the mail announced on an SQS queue (SES stores it in S3 and notifies SNS, SNS feeds SQS).

    A queue message is deleted once its mail is forwarded or dropped with a reason; failures stay
    for redelivery and the queue's dead-letter queue. SIGTERM or Ctrl-C stops after the current batch.
    """
    import boto3

    from forwarder.hosts.lambda_handler import LambdaRuntime

    try:
        # The AWS mode sends through SES unless OTHERMAIL_SENDER says otherwise.
        settings = Settings.from_env(default_sender="ses")
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    obj.settings = settings
    url = queue_url or settings.queue_url
    if not url:
        raise click.ClickException(
            "no queue to read: set OTHERMAIL_QUEUE_URL (or pass --queue-url) to the SQS queue the SNS topic feeds"
        )
    wait = settings.queue_wait_seconds if wait_seconds is None else wait_seconds
    if wait > 20:
        raise click.ClickException(f"OTHERMAIL_QUEUE_WAIT_SECONDS must be at most 20 (the SQS limit), not {wait}")

    logging.getLogger("othermail").setLevel(logging.INFO)
    session = boto3.session.Session(region_name=settings.aws_region)
    try:
        runtime = LambdaRuntime.from_settings(settings, session=session)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        _work(runtime, session.client("sqs"), url, wait, batch, once)
    finally:
        runtime.close()


def _work(runtime: Any, sqs: Any, url: str, wait: int, batch: int, once: bool) -> None:
    from sqlalchemy.engine import make_url

    from forwarder.hosts.queue_worker import QueueWorker

    settings = runtime.settings
    about_queue = _describe_queue(sqs, url)
    stop = threading.Event()
    queue_worker = QueueWorker(runtime, sqs, url, wait_seconds=wait, batch=batch, stop_event=stop)
    database = make_url(settings.resolved_database_url).render_as_string(hide_password=True)
    click.echo(
        f"worker: queue {url} ({about_queue}); bucket s3://{settings.s3_bucket}/{settings.s3_prefix}; "
        f"database {database}; sender {settings.sender}"
    )

    def on_signal(signum: int, _frame: Any) -> None:
        # Finish the batch under way; a second signal stops at once (the default handlers).
        stop.set()
        signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)

    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, on_signal)
    try:
        if once:
            totals = queue_worker.run_once().as_dict()
        else:
            totals = queue_worker.run(stop).as_dict()
    except Exception as exc:  # only a failing receive of --once gets here
        raise click.ClickException(f"receiving from {url} failed: {exc.__class__.__name__}: {exc}") from exc
    click.echo(json.dumps({"event": "worker-stopped", **totals}, sort_keys=True))
