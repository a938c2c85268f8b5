"""The S3 bucket SES writes raw inbound mail to (and the SMTP listener, with OTHERMAIL_STORE=s3)."""

from __future__ import annotations

from typing import Any

from forwarder.errors import MessageNotFound, StoreUnavailable


class S3Store:
    """Reads ``s3://bucket/key``; the key is the SES object key (prefix + SES message id)."""

    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self.bucket = bucket

    def put(self, key: str, raw: bytes) -> None:
        """Write a raw message (the SMTP listener's store when OTHERMAIL_STORE=s3)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.put_object(Bucket=self.bucket, Key=key, Body=raw, ServerSideEncryption="AES256")
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable(f"writing s3://{self.bucket}/{key} failed: {exc}") from exc

    def get(self, key: str, bucket: str | None = None) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        where = f"s3://{bucket or self.bucket}/{key}"
        try:
            response = self._client.get_object(Bucket=bucket or self.bucket, Key=key)
            return bytes(response["Body"].read())
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NoSuchBucket"):
                raise MessageNotFound(f"no raw message at {where}") from exc
            raise StoreUnavailable(f"reading {where} failed: {code}") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"reading {where} failed: {exc}") from exc
