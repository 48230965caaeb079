"""Hand-made JWTs for the attacker's side of the tests.

``cryptography`` is not installed here (PyJWT's RS256 needs it), so the RS256 token is
signed with a textbook RSA key made in pure Python: a real RSASSA-PKCS1-v1_5 SHA-256
signature that a verifier holding the public key would accept.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from src.app.identity.tokens import to_epoch_us


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64url_json(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def claims(
    *,
    user_id: uuid.UUID,
    organisation_id: uuid.UUID,
    role: str = "admin",
    issuer: str = "firemode",
    audience: str = "firemode-api",
    issued_at: datetime | None = None,
    not_before: datetime | None = None,
    expires_at: datetime | None = None,
) -> dict[str, Any]:
    issued = issued_at or datetime.now(UTC)
    return {
        "iss": issuer,
        "aud": audience,
        "sub": str(user_id),
        "org": str(organisation_id),
        "role": role,
        "jti": str(uuid.uuid4()),
        "iat": int(issued.timestamp()),
        "nbf": int((not_before or issued).timestamp()),
        "exp": int((expires_at or issued + timedelta(minutes=15)).timestamp()),
        "iat_us": to_epoch_us(issued),
    }


def hs256(payload: dict[str, Any], secret: str, header: dict[str, Any] | None = None) -> str:
    head = header or {"alg": "HS256", "typ": "at+jwt"}
    signing_input = f"{b64url_json(head)}.{b64url_json(payload)}"
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def unsigned(payload: dict[str, Any]) -> str:
    """``alg: none``: no signature at all (the trailing dot is part of the format)."""
    return f"{b64url_json({'alg': 'none', 'typ': 'at+jwt'})}.{b64url_json(payload)}."


# -- RS256 with a pure-Python RSA key --------------------------------------------------

_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


# Two 1024-bit primes (found once by a Miller-Rabin search and written down, because the
# search takes seconds in pure Python): a 2048-bit RSA key, as RS256 requires.
_P = int(
    (
        "f6523705c52da9f61d4240f0c0a08de98dff5044b9be6030b173e3a1c13dea13"
        "c660787fdb9ed1f29e983609f3f13b845584e87e7c0d34216b4d1b7a781b5d1a"
        "61f4ab52fda49d2cae045e2d07ef221539ee9243e32af94241d7c68c0d8b2591"
        "9ec4ddd91abb76a6111b93bb428ccba3447f1148ca790d8096927f2be033591d"
    ),
    16,
)
_Q = int(
    (
        "c3c54934b1e660c43006ecef38b16adfa79fe6dfe46094aac6b55d08b56cafc1"
        "872699ae4cbfb8436c88d5e5b25900a383d8ce3158c56640b91606e42dd941d5"
        "32327655f4dad490b459f07589f626c4148ada0caecedf824ceaa1828c888af2"
        "68670baae6120fbbc16c0ab2dfdc6fb644f03a9a77f7e5b34f5b32a65d759435"
    ),
    16,
)


def rsa_key() -> tuple[int, int, int]:
    """(n, e, d)."""
    e = 65537
    return _P * _Q, e, pow(e, -1, (_P - 1) * (_Q - 1))


def rs256(payload: dict[str, Any]) -> str:
    n, e, d = rsa_key()
    size = (n.bit_length() + 7) // 8
    signing_input = f"{b64url_json({'alg': 'RS256', 'typ': 'at+jwt'})}.{b64url_json(payload)}"
    digest = _SHA256_DIGEST_INFO + hashlib.sha256(signing_input.encode()).digest()
    encoded = b"\x00\x01" + b"\xff" * (size - len(digest) - 3) + b"\x00" + digest
    signature = pow(int.from_bytes(encoded, "big"), d, n).to_bytes(size, "big")
    # Check it the way a verifier would, so the token is known to be genuinely signed.
    assert pow(int.from_bytes(signature, "big"), e, n).to_bytes(size, "big") == encoded
    return f"{signing_input}.{b64url(signature)}"
