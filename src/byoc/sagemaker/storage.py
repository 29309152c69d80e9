"""Channels to S3 and artifacts back: upload only what changed, download what a job made.

A local channel is mirrored under a stable key prefix (``<prefix>/<project>/channels/<channel>/``).
A file is skipped when an object of the same size and the same MD5 is there already (the ETag of a
single-part upload is its MD5; byoc also stores the MD5 in the ``byoc-md5`` metadata, which is
what counts for multipart uploads). Objects under that prefix with no local file are deleted, so
the channel holds exactly the local files, as a local run would see them.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AwsError
from ..job import channel_files
from ..say import Say, quiet
from ._aws import Aws, split_s3

MD5_METADATA = "byoc-md5"
#: Files larger than this go up in parts (s3transfer), the rest in one PutObject.
MULTIPART_THRESHOLD = 64 * 1024 * 1024
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class SyncResult:
    """What :func:`sync_channel` did."""

    uri: str
    uploaded: int
    skipped: int
    deleted: int
    bytes_uploaded: int


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sync_channel(aws: Aws, source: Path, bucket: str, prefix: str,
                 log: Say = quiet) -> SyncResult:
    """Mirror the file or directory *source* under ``s3://bucket/prefix/``.

    :returns: the channel's ``S3Uri`` (the prefix for a directory, the object for a file) and
        counts of what was uploaded, skipped and deleted.
    """
    prefix = prefix.strip("/") + "/"
    files = channel_files(source)
    base = source.parent if source.is_file() else source
    wanted = {prefix + path.relative_to(base).as_posix(): path for path in files}
    remote = _list(aws, bucket, prefix)
    uploaded = skipped = sent = 0
    for key, path in wanted.items():
        size = path.stat().st_size
        md5 = md5_of(path)
        if key in remote and _same(aws, bucket, key, remote[key], size, md5):
            skipped += 1
            continue
        _upload(aws, path, bucket, key, md5, size)
        uploaded += 1
        sent += size
    stale = sorted(set(remote) - set(wanted))
    for start in range(0, len(stale), 1000):
        aws.call("s3", "DeleteObjects", Bucket=bucket, Delete={
            "Objects": [{"Key": key} for key in stale[start:start + 1000]], "Quiet": True})
    uri = f"s3://{bucket}/{prefix}"
    if source.is_file():
        uri += source.name
    log(f"{uri}: {uploaded} file(s) uploaded ({sent} bytes), {skipped} unchanged"
        + (f", {len(stale)} removed" if stale else ""))
    return SyncResult(uri, uploaded, skipped, len(stale), sent)


def _list(aws: Aws, bucket: str, prefix: str) -> dict[str, tuple[int, str]]:
    found: dict[str, tuple[int, str]] = {}
    token: str | None = None
    while True:
        extra = {"ContinuationToken": token} if token else {}
        page = aws.call("s3", "ListObjectsV2", Bucket=bucket, Prefix=prefix, **extra)
        for item in page.get("Contents") or ():
            found[str(item["Key"])] = (int(item["Size"]), str(item.get("ETag", "")).strip('"'))
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            return found


def _same(aws: Aws, bucket: str, key: str, remote: tuple[int, str], size: int, md5: str) -> bool:
    remote_size, etag = remote
    if remote_size != size:
        return False
    if "-" not in etag:  # single-part: the ETag is the MD5
        return etag == md5
    head = aws.call("s3", "HeadObject", Bucket=bucket, Key=key)
    return bool((head.get("Metadata") or {}).get(MD5_METADATA) == md5)


def _upload(aws: Aws, path: Path, bucket: str, key: str, md5: str, size: int) -> None:
    if size <= MULTIPART_THRESHOLD:
        with path.open("rb") as body:
            aws.call("s3", "PutObject", Bucket=bucket, Key=key, Body=body,
                     ContentMD5=base64.b64encode(bytes.fromhex(md5)).decode(),
                     Metadata={MD5_METADATA: md5})
        return
    import boto3.exceptions
    import botocore.exceptions

    try:
        aws.client("s3").upload_file(str(path), bucket, key,
                                     ExtraArgs={"Metadata": {MD5_METADATA: md5}})
    except (boto3.exceptions.S3UploadFailedError, botocore.exceptions.BotoCoreError) as exc:
        raise AwsError(f"upload of {path} to s3://{bucket}/{key} failed: {exc}") from exc


def exists(aws: Aws, uri: str) -> bool:
    bucket, key = split_s3(uri)
    return aws.lookup("s3", "HeadObject", Bucket=bucket, Key=key,
                      missing=frozenset({"404", "NoSuchKey", "NotFound"})) is not None


def download(aws: Aws, uri: str, target: Path) -> Path:
    """Stream the object *uri* into *target* (written to a temporary name, then renamed)."""
    bucket, key = split_s3(uri)
    answer = aws.call("s3", "GetObject", Bucket=bucket, Key=key)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    body: Any = answer["Body"]
    try:
        with partial.open("wb") as out:
            for chunk in body.iter_chunks(CHUNK):
                out.write(chunk)
    finally:
        body.close()
    partial.replace(target)
    return target


def upload_file(aws: Aws, path: Path, uri: str) -> str:
    """Put one local file at *uri* (skipped when the same content is there)."""
    bucket, key = split_s3(uri)
    md5 = md5_of(path)
    size = path.stat().st_size
    head = aws.lookup("s3", "HeadObject", Bucket=bucket, Key=key,
                      missing=frozenset({"404", "NoSuchKey", "NotFound"}))
    if head is None or int(head.get("ContentLength", -1)) != size or (
            str(head.get("ETag", "")).strip('"') != md5
            and (head.get("Metadata") or {}).get(MD5_METADATA) != md5):
        _upload(aws, path, bucket, key, md5, size)
    return uri
