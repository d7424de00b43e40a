"""The owner's password as one slow hash (scrypt, from hashlib): make it, check it (pure).

Stored as ``$scrypt$ln=17,r=8,p=1$<salt>$<hash>`` (unpadded URL-safe base64): the cost travels
with the hash, so a later, dearer default still checks older hashes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass

MIN_LENGTH = 8
MAX_LENGTH = 1024  # longer input is refused unread, not hashed
SALT_BYTES = 16
KEY_BYTES = 32
_FORMAT = re.compile(
    r"\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9_-]{16,88})\$([A-Za-z0-9_-]{43})"
)


class PasswordRefused(ValueError):
    """A new password that is too short or too long; says which."""


@dataclass(frozen=True, slots=True)
class Cost:
    """scrypt's parameters: N = 2**ln, block size r, parallelism p."""

    ln: int = 17  # OWASP's first choice: N=2^17, r=8, p=1 (128 MiB, ~0.5 s on one core)
    r: int = 8
    p: int = 1

    def memory(self) -> int:
        """Bytes scrypt needs for these parameters (with room for OpenSSL's own use)."""
        return 128 * self.r * ((1 << self.ln) + self.p + 2) + 1024 * 1024

    def allowed(self) -> bool:
        """Within what a login may spend (a hash edited by hand cannot exhaust the server)."""
        return 1 <= self.ln <= 20 and 1 <= self.r <= 16 and 1 <= self.p <= 4


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derive(password: str, salt: bytes, cost: Cost) -> bytes:
    # NFKC: a password typed with a full-width (Chinese) keyboard is the same password.
    data = unicodedata.normalize("NFKC", password).encode("utf-8")
    return hashlib.scrypt(
        data, salt=salt, n=1 << cost.ln, r=cost.r, p=cost.p, maxmem=cost.memory(), dklen=KEY_BYTES
    )


def check_new(password: str) -> None:
    """PasswordRefused unless ``password`` is one the owner may set."""
    if len(password) < MIN_LENGTH:
        raise PasswordRefused(f"is {len(password)} characters; use at least {MIN_LENGTH}")
    if len(password) > MAX_LENGTH:
        raise PasswordRefused(f"is {len(password)} characters; use at most {MAX_LENGTH}")


def hash_password(password: str, *, cost: Cost | None = None, salt: bytes | None = None) -> str:
    """The stored form of a new password (a fresh random salt unless one is given)."""
    check_new(password)
    cost = cost or Cost()
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    key = _derive(password, salt, cost)
    return f"$scrypt$ln={cost.ln},r={cost.r},p={cost.p}${_b64(salt)}${_b64(key)}"


def parse(stored: str) -> tuple[Cost, bytes, bytes]:
    """Cost, salt and key of a stored hash; ValueError when it is not one we wrote."""
    match = _FORMAT.fullmatch(stored)
    if not match:
        raise ValueError("not a $scrypt$ hash written by `bot admin-password`")
    cost = Cost(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    if not cost.allowed():
        raise ValueError(f"scrypt cost ln={cost.ln},r={cost.r},p={cost.p} is out of bounds")
    return cost, _unb64(match.group(4)), _unb64(match.group(5))


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` is the one ``stored`` was made from (constant-time compare).

    ValueError when ``stored`` is malformed; an over-long ``password`` is False, unhashed.
    """
    cost, salt, key = parse(stored)
    if len(password) > MAX_LENGTH:
        return False
    return hmac.compare_digest(_derive(password, salt, cost), key)


def fingerprint(stored: str) -> str:
    """A short digest of the stored hash: sessions carry it, so a new password ends them all."""
    return hashlib.sha256(stored.encode("utf-8")).hexdigest()[:16]
