"""Argon2id password hashing, off the event loop and bounded in concurrency.

A password is the characters its user chose: never stripped or otherwise changed. The
one transformation is Unicode NFC normalisation, applied here and only here, on every
path that hashes or verifies, so that "é" typed as one code point on one keyboard and as
"e" plus a combining accent on another is the same password.
"""

from __future__ import annotations

import asyncio
import unicodedata
from functools import lru_cache

from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError
from pwdlib.hashers.argon2 import Argon2Hasher

MIN_PASSWORD_LENGTH = 8
# Long enough for any passphrase, short enough that nobody hashes megabytes on our CPU.
MAX_PASSWORD_LENGTH = 1024
PASSWORD_RULE = (
    f"{MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters (counted after Unicode NFC "
    "normalisation), kept exactly as typed: spaces are part of the password"
)


def normalise_password(password: str) -> str:
    """The one transformation a password undergoes (NFC), before hashing and verifying."""
    return unicodedata.normalize("NFC", password)


def new_password_problem(password: str) -> str | None:
    """Why ``password`` cannot be a new password, or None. The API and the CLI both ask."""
    length = len(normalise_password(password))
    if not MIN_PASSWORD_LENGTH <= length <= MAX_PASSWORD_LENGTH:
        return f"must have {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters"
    if "\x00" in password:
        return "must not contain the character U+0000"
    return None


# Argon2id with OWASP's recommended parameters (19 MiB, 2 passes, 1 lane): about 0.1 s on
# one core of the reference machine, where the library default (64 MiB, 3 passes) costs
# 0.5 s and would make login an easy way to exhaust the CPU. Changing these rehashes each
# user's password at their next login.
ARGON2_MEMORY_KIB = 19 * 1024
ARGON2_TIME_COST = 2
ARGON2_PARALLELISM = 1
_hasher = PasswordHash(
    (
        Argon2Hasher(
            time_cost=ARGON2_TIME_COST,
            memory_cost=ARGON2_MEMORY_KIB,
            parallelism=ARGON2_PARALLELISM,
        ),
    )
)
_semaphores: dict[int, asyncio.Semaphore] = {}


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    # Verified against for unknown emails, so timing does not reveal which emails exist.
    return _hasher.hash("firemode-dummy-password-for-timing")


def hash_password_sync(password: str) -> str:
    return _hasher.hash(normalise_password(password))


def _limit(max_concurrent: int) -> asyncio.Semaphore:
    semaphore = _semaphores.get(max_concurrent)
    if semaphore is None:
        semaphore = _semaphores[max_concurrent] = asyncio.Semaphore(max_concurrent)
    return semaphore


async def hash_password(password: str, *, max_concurrent: int = 4) -> str:
    async with _limit(max_concurrent):
        return await asyncio.to_thread(hash_password_sync, password)


def _verify_sync(password: str, password_hash: str | None) -> tuple[bool, str | None]:
    password = normalise_password(password)
    if password_hash is None:
        _hasher.verify_and_update(password, _dummy_hash())
        return False, None
    try:
        return _hasher.verify_and_update(password, password_hash)
    except UnknownHashError:
        # A stored hash we cannot read never matches; still pay the cost of one verify.
        _hasher.verify_and_update(password, _dummy_hash())
        return False, None


async def verify_password(
    password: str, password_hash: str | None, *, max_concurrent: int = 4
) -> tuple[bool, str | None]:
    """(valid, new_hash): ``new_hash`` is set when the stored hash's parameters are stale.

    ``password_hash`` None (unknown email) still costs one verification, so the response
    time does not reveal which emails exist."""
    async with _limit(max_concurrent):
        return await asyncio.to_thread(_verify_sync, password, password_hash)
