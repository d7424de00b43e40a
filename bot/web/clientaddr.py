"""Who the client is: the socket peer, unless a trusted proxy says otherwise (pure)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from bot.config.networks import Network

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    """The proxies allowed to name the client (``[server] trusted_proxies``); empty: none."""

    networks: tuple[Network, ...] = ()

    def trusts(self, address: Address | None) -> bool:
        """True when ``address`` is one of the proxies."""
        return address is not None and any(address in net for net in self.networks)

    def client(self, peer: str, forwarded_for: list[str], real_ip: str | None) -> str:
        """The client's address for a request from ``peer`` carrying these header values.

        Only a trusted peer may name the client. ``X-Forwarded-For`` is read from the right: each
        trusted hop is skipped and the first address that is not a proxy is the client (the
        left part is whatever the client wrote, never believed). Without it, ``X-Real-IP``.
        """
        hop = _address(peer)
        if not self.trusts(hop):
            return peer
        chain = [part for value in forwarded_for for part in value.split(",") if part.strip()]
        for part in reversed(chain):
            address = _address(part)
            if address is None:
                return str(hop)  # a hop we trust wrote garbage: the last hop we can name
            if not self.trusts(address):
                return str(address)
            hop = address
        if chain:
            return str(hop)  # every hop is a proxy: the leftmost one
        if real_ip is not None and (address := _address(real_ip)) is not None:
            return str(address)
        return peer
