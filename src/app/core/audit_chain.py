"""The audit hash chain, without I/O: canonical entries, link hashes, and verification.

Each organisation has one chain. Its link at position ``n`` (1, 2, ...) is
``SHA-256(hash(n - 1) || canonical(entry))``; the hash before position 1 is the
organisation's genesis hash, so a chain cannot be passed off as another organisation's.
The design (who seals, in what order, and why that is sound) is in docs/api/audit.md.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any

from src.app.core.clock import to_rfc3339

SYSTEM_ACTOR = "system"
USER_ACTOR = "user"

# Keys a payload must never carry: the trail is read by auditors, and secrets leak from it.
FORBIDDEN_PAYLOAD_KEYS = frozenset(
    {
        "password",
        "password_hash",
        "secret",
        "token",
        "access_token",
        "refresh_token",
        "token_hash",
        "api_key",
        "signing_secret",
    }
)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_rfc3339(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON")


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: one byte string for one JSON value. Dates, UUIDs
    and enums are written as their usual strings."""
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=_plain,
    ).encode("utf-8")


def normalised_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The payload as the database will hand it back (plain JSON types), checked for
    secrets. Raises ``ValueError`` for a forbidden key anywhere in it."""
    _refuse_secrets(payload)
    normalised: dict[str, Any] = json.loads(canonical_json(dict(payload)))
    return normalised


def _refuse_secrets(value: Any) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if str(key).lower() in FORBIDDEN_PAYLOAD_KEYS:
                raise ValueError(f"an audit payload must not carry {key!r}")
            _refuse_secrets(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _refuse_secrets(item)


@dataclass(frozen=True, slots=True)
class EntryFacts:
    """What is hashed of an entry: everything it says, nothing the database adds later."""

    seq: int
    id: uuid.UUID
    organisation_id: uuid.UUID
    actor_type: str
    actor_id: uuid.UUID | None
    action: str
    subject_type: str
    subject_id: str
    payload: dict[str, Any]
    transaction_id: str
    created_at: datetime

    def canonical(self) -> bytes:
        return canonical_json(
            {
                "seq": self.seq,
                "id": str(self.id),
                "organisation_id": str(self.organisation_id),
                "actor": {
                    "type": self.actor_type,
                    "id": str(self.actor_id) if self.actor_id else None,
                },
                "action": self.action,
                "subject": {"type": self.subject_type, "id": self.subject_id},
                "payload": self.payload,
                "transaction_id": self.transaction_id,
                "created_at": to_rfc3339(self.created_at),
            }
        )


def genesis_hash(organisation_id: uuid.UUID) -> str:
    """The hash "before" position 1 of an organisation's chain."""
    return hashlib.sha256(b"firemode-audit-genesis\x00" + str(organisation_id).encode()).hexdigest()


def link_hash(previous: str, entry: EntryFacts) -> str:
    """``SHA-256(previous hash || canonical entry)``, hex."""
    digest = hashlib.sha256(bytes.fromhex(previous))
    digest.update(entry.canonical())
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class SealedLink:
    """One stored link as read back: its position and hash, and the entry it points at
    (``None`` when that entry no longer exists)."""

    position: int
    entry_seq: int
    hash: str
    entry: EntryFacts | None


@dataclass(frozen=True, slots=True)
class Break:
    """The first link that does not verify."""

    position: int
    entry_seq: int | None
    entry_id: uuid.UUID | None
    reason: str


@dataclass(frozen=True, slots=True)
class ChainCheck:
    organisation_id: uuid.UUID
    sealed: int
    head_position: int
    head_hash: str
    head_seq: int | None
    first_break: Break | None


class ChainWalker:
    """Recomputes an organisation's chain from genesis, one stored link at a time (in
    position order), and keeps the first link that is missing, out of place, of another
    organisation, or whose hash differs from the recomputed one. Every later hash
    depends on that one, so the walk stops there."""

    def __init__(self, organisation_id: uuid.UUID, anchor: tuple[int, str] | None = None) -> None:
        self.organisation_id = organisation_id
        self.anchor = anchor
        self.previous = genesis_hash(organisation_id)
        self.expected = 1
        self.head_seq: int | None = None
        self.first_break: Break | None = None

    def feed(self, link: SealedLink) -> bool:
        """Check one link; False once the chain is broken (stop feeding)."""
        if self.first_break is not None:
            return False
        problem = self._problem(link)
        if problem is not None:
            entry = link.entry
            position = min(link.position, self.expected)
            exact = link.position == self.expected
            self.first_break = Break(
                position,
                link.entry_seq if exact else None,
                entry.id if exact and entry is not None else None,
                problem,
            )
            return False
        if (
            self.anchor is not None
            and self.anchor[0] == link.position
            and (self.anchor[1] != link.hash)
        ):
            self.first_break = Break(
                link.position,
                link.entry_seq,
                link.entry.id if link.entry else None,
                "the hash differs from the anchored one: the chain was rebuilt since",
            )
            return False
        self.previous = link.hash
        self.head_seq = link.entry_seq
        self.expected += 1
        return True

    def _problem(self, link: SealedLink) -> str | None:
        if link.position > self.expected:
            return f"position {self.expected} is missing (the next stored link is {link.position})"
        if link.position < self.expected:
            return f"position {link.position} appears again"
        entry = link.entry
        if entry is None:
            return f"entry {link.entry_seq} sealed at this position no longer exists"
        if entry.organisation_id != self.organisation_id:
            return "the entry sealed at this position belongs to another organisation"
        if link_hash(self.previous, entry) != link.hash:
            return (
                "the hash does not match the entry and the previous link (the entry was "
                "changed, or entries were removed or reordered)"
            )
        return None

    def finish(self) -> ChainCheck:
        if self.first_break is None and self.anchor is not None and self.anchor[0] >= self.expected:
            self.first_break = Break(
                self.expected,
                None,
                None,
                f"the chain ends at position {self.expected - 1}, before the anchored "
                f"position {self.anchor[0]}: links were removed",
            )
        return ChainCheck(
            self.organisation_id,
            self.expected - 1,
            self.expected - 1,
            self.previous,
            self.head_seq,
            self.first_break,
        )


def verify_links(
    organisation_id: uuid.UUID,
    links: Iterable[SealedLink],
    anchor: tuple[int, str] | None = None,
) -> ChainCheck:
    """Walk ``links`` (in position order) with a ``ChainWalker``."""
    walker = ChainWalker(organisation_id, anchor)
    for link in links:
        if not walker.feed(link):
            break
    return walker.finish()
