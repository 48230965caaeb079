"""Argon2id password hashing, off the event loop and bounded in concurrency."""

from __future__ import annotations

import asyncio
from functools import lru_cache

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

MIN_PASSWORD_LENGTH = 12

_hasher = PasswordHash((Argon2Hasher(),))
_semaphores: dict[int, asyncio.Semaphore] = {}


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    # Verified against for unknown emails, so timing does not reveal which emails exist.
    return _hasher.hash("firemode-dummy-password-for-timing")


def hash_password_sync(password: str) -> str:
    return _hasher.hash(password)


def _limit(max_concurrent: int) -> asyncio.Semaphore:
    semaphore = _semaphores.get(max_concurrent)
    if semaphore is None:
        semaphore = _semaphores[max_concurrent] = asyncio.Semaphore(max_concurrent)
    return semaphore


async def hash_password(password: str, *, max_concurrent: int = 4) -> str:
    async with _limit(max_concurrent):
        return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(
    password: str, password_hash: str | None, *, max_concurrent: int = 4
) -> tuple[bool, str | None]:
    """(valid, new_hash): ``new_hash`` is set when the stored hash's parameters are stale."""
    target = password_hash if password_hash is not None else _dummy_hash()
    async with _limit(max_concurrent):
        valid, updated = await asyncio.to_thread(_hasher.verify_and_update, password, target)
    if password_hash is None:
        return False, None
    return valid, updated
