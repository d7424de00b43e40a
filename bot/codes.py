"""Pick-up codes (提取码): short, unambiguous, case-insensitive stand-ins for one issued link."""

from __future__ import annotations

import ipaddress
import os
import secrets
import unicodedata
from collections.abc import Callable

from bot.errors import StoreUnavailable
from bot.links import Link
from bot.state import PickupCodes, Store

# No 0/O, 1/I/L: 23 letters + 8 digits = 31 symbols; 31**6 ≈ 8.9e8 codes.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
LENGTH = 6
PATH = "/k"
PLACEHOLDERS = ("{code}", "{pickup_url}")
TRIES = 8  # a collision with a live code is ~1e-5 per try even with 10,000 live links
_SEPARATORS = frozenset("_·.・•")  # kept apart from Unicode's own categories below
IPV6_BLOCK = 64  # one address for guessing: a host gets a whole /64 (RFC 6177)


def codes_of(enabled: bool, store: Store) -> PickupCodes | None:
    """The store as the code keeper when codes are on, else None."""
    return store if enabled else None


_EVEN = 256 - 256 % len(ALPHABET)  # random bytes below this map onto the alphabet evenly


def new_code(randbelow: Callable[[int], int] | None = None) -> str:
    """A fresh random code: one read of the OS's random source (``randbelow``: a test seam)."""
    if randbelow is not None:
        return "".join(ALPHABET[randbelow(len(ALPHABET))] for _ in range(LENGTH))
    code = ""
    while len(code) < LENGTH:  # a byte past _EVEN (3%) is drawn again
        code += "".join(ALPHABET[b % len(ALPHABET)] for b in os.urandom(LENGTH + 2) if b < _EVEN)
    return code[:LENGTH]


def normalize(text: str) -> str | None:
    """The code a follower typed, or None if it cannot be one: any case, full-width characters
    (NFKC), and every kind of space, dash or invisible character (NBSP, U+3000, tab, U+200B)."""
    code = "".join(c for c in unicodedata.normalize("NFKC", text) if not _separator(c)).upper()
    if len(code) != LENGTH or any(c not in ALPHABET for c in code):
        return None
    return code


def _separator(char: str) -> bool:
    kind = unicodedata.category(char)
    return kind[0] in "ZC" or kind == "Pd" or char in _SEPARATORS


def guesser(ip: str) -> str:
    """Whom wrong codes are counted against: the address, or its /64 for IPv6."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{address}/{IPV6_BLOCK}", strict=False))
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return str(mapped or address)


def mask(text: str) -> str:
    """A code as logs show it: the first two characters only."""
    return text[:2].upper() + "****" if text else "-"


def link_template(template: str, *, codes: bool) -> str:
    """A reply template; without pick-up codes its lines naming {code}/{pickup_url} are left out."""
    if codes:
        return template
    return "\n".join(
        line for line in template.split("\n") if not any(p in line for p in PLACEHOLDERS)
    )


async def reserve(
    codes: PickupCodes,
    token: str,
    link: Link,
    *,
    randbelow: Callable[[int], int] = secrets.randbelow,
) -> str:
    """A code stored for this link's token, live exactly as long as the link."""
    for _ in range(TRIES):
        code = new_code(randbelow)
        if await codes.put_code(code, token, link.link_id, link.expires_at.timestamp()):
            return code
    raise StoreUnavailable(f"no free pick-up code after {TRIES} tries")
