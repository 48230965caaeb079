"""A real S3-compatible server for the tests: moto's server, in its own process."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import httpx
from pydantic import SecretStr

from src.app.core.settings import Settings
from tests.identity.conftest import closed_port

ACCESS_KEY, SECRET_KEY, REGION = "testing", "testing-secret", "us-east-1"


@contextmanager
def moto_server(log: Path) -> Iterator[str]:
    """Start ``python -m moto.server`` on a free local port; yields its endpoint URL."""
    port = closed_port()
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                if process.poll() is not None:
                    raise AssertionError(f"moto server exited: {log.read_text()}")
                try:
                    httpx.get(url + "/moto-api/", timeout=1)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise AssertionError("moto server did not start") from None
                    time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)


def locked_bucket_settings(endpoint: str, base: Settings) -> Settings:
    """Settings naming a new bucket with object lock enabled on the server."""
    bucket = f"evidence-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    return base.model_copy(
        update={
            "evidence_s3_bucket": bucket,
            "evidence_s3_endpoint_url": endpoint,
            "evidence_s3_region": REGION,
            "evidence_s3_access_key_id": ACCESS_KEY,
            "evidence_s3_secret_access_key": SecretStr(SECRET_KEY),
            "evidence_s3_prefix": "firemode/",
        }
    )
