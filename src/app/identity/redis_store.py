"""The identity domain's Redis connection: lazy, short timeouts, and a brief circuit breaker.

Redis is an accelerator here, never the record: every read has a database path to fall
back to, so a failing Redis must cost one quick error, not a stall on every request.
(Revocation writes have no fallback: they are refused with 503 while Redis fails.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from src.app.core.settings import Settings, SettingsError

logger = logging.getLogger("firemode.identity.redis")

T = TypeVar("T")


class RedisUnavailable(Exception):
    """Redis did not answer (refused, timed out, or is in its back-off period)."""


class RedisStore:
    def __init__(self, url: str, *, prefix: str, timeout: float, retry_after: float) -> None:
        self.url = url
        self.prefix = prefix
        self.timeout = timeout
        self.retry_after = retry_after
        self._client: Redis | None = None
        self._down_until = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisStore | None:
        if not settings.redis_url:
            return None
        try:
            parse_url(settings.redis_url)  # a typo must stop the start, not fail each request
        except ValueError as exc:
            raise SettingsError(f"FIREMODE_REDIS_URL is not a Redis URL: {exc}") from None
        return cls(
            settings.redis_url,
            prefix=settings.redis_key_prefix,
            timeout=settings.redis_timeout_seconds,
            retry_after=settings.redis_retry_seconds,
        )

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    @property
    def client(self) -> Redis:
        # Created on first use, inside the running event loop (ASGI test transports never
        # run the lifespan, and a client is bound to the loop that opened its connections).
        if self._client is None:
            self._client = Redis.from_url(
                self.url,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
                retry=Retry(NoBackoff(), 0),
                decode_responses=True,
            )
        return self._client

    @property
    def in_backoff(self) -> bool:
        return time.monotonic() < self._down_until

    async def run(
        self, operation: Callable[[Redis], Awaitable[T]], *, ignore_backoff: bool = False
    ) -> T:
        """Run one Redis operation; any failure becomes RedisUnavailable.

        ``ignore_backoff``: try even during the back-off period (rare writes that have no
        database fallback, such as revocations)."""
        if self.in_backoff and not ignore_backoff:
            raise RedisUnavailable("Redis is in its back-off period")
        try:
            async with asyncio.timeout(self.timeout * 2):
                return await operation(self.client)
        except (RedisError, OSError, TimeoutError) as exc:
            if not self.in_backoff:
                logger.warning(
                    "redis unavailable; using the database",
                    extra={"error": type(exc).__name__, "retry_after_s": self.retry_after},
                )
            self._down_until = time.monotonic() + self.retry_after
            raise RedisUnavailable(type(exc).__name__) from exc

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            try:
                await client.aclose()
            except (RedisError, OSError):  # closing a dead connection
                logger.debug("redis close failed", exc_info=True)
