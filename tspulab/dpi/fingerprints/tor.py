"""Tor: relay addresses, and the traits of the ClientHello Tor itself sends to a relay.

Russia's December 2021 Tor block was IP blocking of relays and bridges (tspu-behaviour.md §5.2),
so the relay set is the main signal. ``load_relays`` reads a list of addresses or small prefixes,
one a line with ``#`` comments, such as data/tor/ndpi_tor_relays_2024-10.txt (nDPI's
generated relay list), and expands prefixes up to /20 so that ``is_relay`` is one set lookup.

TLS traits of Tor's client handshake (link protocol), used by ``tls_traits``; verified in Tor's
source, ``src/lib/tls/tortls_openssl.c``, ``tor_tls_new()``:

1. SNI is a fake hostname made by ``crypto_random_hostname(4, 25, "www.", ".com")``: "www.", then
   4 to 25 characters of Tor's lowercase base32 alphabet (a-z, 2-7), then ".com"
   (``crypto_random_hostname`` in ``src/lib/crypt_ops/crypto_rand.c``).
2. No ALPN extension: ``tor_tls_new()`` sets only the host name and the cipher list.

Both hold for all 7 Tor ClientHellos in nDPI's tor.pcap. A browser visiting a real site named like
``www.abcd.com`` with no ALPN would also match; that is why the name is called a trait, to be
combined with the relay set or the flow's other behaviour, not a verdict on its own. The cipher
list (CLIENT_CIPHER_LIST) depends on the OpenSSL version Tor is built with, so it is not used.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from tspulab.dpi.tls import ClientHello

_TOR_SNI = re.compile(r"www\.[a-z2-7]{4,25}\.com")
_MAX_EXPANDED_PREFIX = 4096


def load_relays(path: str | Path) -> frozenset[str]:
    """Relay addresses in canonical text form. Raises ValueError naming the bad line."""
    relays: set[str] = set()
    for number, raw in enumerate(Path(path).read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            network = ipaddress.ip_network(line, strict=False)
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: {exc}") from exc
        if network.num_addresses > _MAX_EXPANDED_PREFIX:
            raise ValueError(f"{path}:{number}: prefix {network} too large to expand")
        if network.num_addresses == 1:
            relays.add(str(network.network_address))
        else:
            relays.update(str(address) for address in network)
    return frozenset(relays)


def is_relay(addr: str, relays: frozenset[str]) -> bool:
    """True if `addr` (any text form ipaddress accepts) is in `relays`. Bad text -> False."""
    try:
        return str(ipaddress.ip_address(addr)) in relays
    except ValueError:
        return False


def tls_traits(ch: ClientHello) -> bool:
    """True if the ClientHello has Tor's client traits: the fake "www.<base32>.com" SNI and no
    ALPN extension (see the module docstring for the source)."""
    return ch.sni is not None and _TOR_SNI.fullmatch(ch.sni) is not None and not ch.alpn
