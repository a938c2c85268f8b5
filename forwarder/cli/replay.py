"""``othermail replay``: re-drive the dead-letter queue, or inbound messages by id (forwarder/flows/replay.py)."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import IO, Any

import click

from forwarder.cli.context import CliContext
from forwarder.errors import SettingsError
from forwarder.settings import Settings


@click.command()
@click.option(
    "--dlq",
    "queue_url",
    metavar="QUEUE_URL",
    help="Replay the events of this SQS dead-letter queue (the stack's DeadLetterQueueUrl).",
)
@click.option("--max", "limit", type=click.IntRange(min=1), help="Replay at most N dead-letter messages.")
@click.option(
    "--message-id",
    "message_ids",
    multiple=True,
    metavar="ID",
    help="Replay the stored inbound message ID; more IDs may follow as arguments.",
)
@click.option(
    "--ids-from",
    type=click.File("r"),
    metavar="FILE",
    help="Replay the message ids in FILE, one a line ('-': standard input).",
)
@click.option(
    "--store",
    type=click.Choice(["s3", "local"]),
    help="Where raw messages are kept (default: s3 when OTHERMAIL_S3_BUCKET or OTHERMAIL_STORE=s3 "
    "says so, else the local store OTHERMAIL_STORE_DIR).",
)
@click.option(
    "--wait-seconds",
    default=2,
    show_default=True,
    type=click.IntRange(0, 20),
    help="Long-poll wait of each dead-letter receive; the run ends at the first empty one.",
)
@click.argument("more_ids", nargs=-1, metavar="[ID]...")
@click.pass_obj
def replay(
    obj: CliContext,
    queue_url: str | None,
    limit: int | None,
    message_ids: tuple[str, ...],
    ids_from: IO[str] | None,
    store: str | None,
    wait_seconds: int,
    more_ids: tuple[str, ...],
) -> None:
    """Forward again what failed, through the same path as the Lambda, with the settings of the
    environment (OTHERMAIL_*, and the secrets OTHERMAIL_SSM_PATH / OTHERMAIL_SECRETS_ARN name).

    Idempotent: a destination recorded as sent is not sent again, so replaying twice sends nothing
    the second time. A dead-letter message is deleted only once its event is handled. Exits 1 when
    something could not be replayed, naming why.
    """
    ids = [*message_ids, *more_ids, *(_ids_in(ids_from) if ids_from is not None else [])]
    if bool(queue_url) == bool(ids or message_ids or ids_from):
        raise click.UsageError("give either --dlq QUEUE_URL or --message-id ID [ID]... / --ids-from FILE")
    if limit is not None and not queue_url:
        raise click.UsageError("--max applies to --dlq")
    from forwarder.adapters.aws.secrets import environ_with_secrets

    use_s3 = store == "s3" or (store is None and (obj.settings.store == "s3" or bool(obj.settings.s3_bucket)))
    try:
        # the AWS mode sends through SES unless OTHERMAIL_SENDER says otherwise; the one box, to its outbox
        settings = Settings.from_env(environ_with_secrets(), default_sender="ses" if queue_url or use_s3 else "outbox")
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    obj.settings = settings
    if queue_url:
        results, total = _dlq(settings, queue_url, limit, wait_seconds)
    else:
        results, total = _messages(obj, settings, ids, use_s3)
    _report(results, total)


def _ids_in(stream: IO[str]) -> list[str]:
    return [line.strip() for line in stream if line.strip() and not line.lstrip().startswith("#")]


def _runtime(settings: Settings) -> Any:
    from forwarder.hosts.lambda_handler import LambdaRuntime

    try:
        return LambdaRuntime.from_settings(settings)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


def _dlq(settings: Settings, queue_url: str, limit: int | None, wait_seconds: int) -> tuple[Iterator[Any], int]:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from forwarder.flows.replay import DlqReplay

    runtime = _runtime(settings)
    sqs = boto3.session.Session(region_name=settings.aws_region).client("sqs")
    redrive = DlqReplay(runtime, sqs, queue_url, wait_seconds=wait_seconds)
    try:
        waiting = redrive.approximate_count()
    except (BotoCoreError, ClientError) as exc:
        runtime.close()
        raise click.ClickException(f"the dead-letter queue {queue_url} cannot be read: {exc}") from exc
    total = min(waiting, limit) if limit is not None else waiting

    def run() -> Iterator[Any]:
        try:
            for message in redrive.messages(limit):
                yield redrive.replay(message)
        finally:
            redrive.release_left()
            runtime.close()

    return run(), total


def _messages(obj: CliContext, settings: Settings, ids: list[str], use_s3: bool) -> tuple[Iterator[Any], int]:
    from forwarder.flows.replay import MessageReplay

    if use_s3:
        runtime = _runtime(settings)
        forwarder, store, engine, close = runtime.forwarder, runtime.store, runtime.engine, runtime.close
    else:
        from forwarder.runtime import Runtime

        local = Runtime.build(settings)
        forwarder, store, engine, close = local.forwarder, local.store, local.engine, local.close
    redrive = MessageReplay(forwarder, store, engine, settings.domains, settings.s3_prefix)

    def run() -> Iterator[Any]:
        try:
            for message_id in dict.fromkeys(ids):
                yield redrive.replay(message_id)
        finally:
            close()

    return run(), len(dict.fromkeys(ids))


def _report(results: Iterable[Any], total: int) -> None:
    """A progress bar on standard error, a line per thing left, and one summary line."""
    done = left = 0
    outcomes: Counter[str] = Counter()
    problems: list[str] = []
    with click.progressbar(length=max(total, 1), label="replaying", file=sys.stderr) as bar:
        for result in results:
            outcomes.update(result.outcomes)
            if result.done:
                done += 1
            else:
                left += 1
                problems.append(f"left {result.label}: {result.detail}")
            bar.update(1)
    for line in problems:
        click.echo(line, err=True)
    counted = " ".join(f"{name}={count}" for name, count in sorted(outcomes.items()))
    click.echo(f"replay: replayed={done + left} handled={done} left={left}" + (f" {counted}" if counted else ""))
    if left:
        sys.exit(1)
