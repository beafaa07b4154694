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
3. The extension layout of a bare OpenSSL client with session tickets off (Tor's TLS context sets
   ``SSL_OP_NO_TICKET``; ``tor_tls_context_init_one()`` asks for no OCSP stapling, SCTs or ALPN):
   server_name first, then only extensions OpenSSL adds on its own (ec_point_formats,
   supported_groups, signature_algorithms, encrypt_then_mac, extended_master_secret,
   renegotiation_info, heartbeat, padding, and for TLS 1.3 supported_versions,
   psk_key_exchange_modes, key_share); no session_ticket; no GREASE anywhere (OpenSSL never
   sends it); null compression only.

All three hold for the 7 Tor ClientHellos in nDPI's tor.pcap. The SNI shape alone is not enough:
``www.amazon.com`` fits it, and a script or an app without ALPN visiting it was once called Tor,
collateral damage for a TSPU that blocks Tor. Browsers fail rule 2 and 3 (ALPN, GREASE, tickets,
OCSP), curl, Python and ``openssl s_client`` fail rule 3 (session_ticket), Go and Java clients too
(status_request, SCT, signature_algorithms_cert). The cipher list (CLIENT_CIPHER_LIST) depends on
the OpenSSL version Tor is built with, so it is not used. The relay address set remains the
strong signal; the traits catch bridges and relays missing from the list.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from tspulab.dpi.tls import ClientHello

_TOR_SNI = re.compile(r"www\.[a-z2-7]{4,25}\.com")
_SESSION_TICKET = 35
# What an OpenSSL client sends unasked (1.0.x to 3.x): 0 server_name, 10 supported_groups,
# 11 ec_point_formats, 13 signature_algorithms, 15 heartbeat (1.0.1), 21 padding, 22
# encrypt_then_mac, 23 extended_master_secret, 43 supported_versions, 45 psk_key_exchange_modes,
# 51 key_share, 0xff01 renegotiation_info.
_OPENSSL_UNASKED = frozenset((0, 10, 11, 13, 15, 21, 22, 23, 43, 45, 51, 0xFF01))
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


def sni_shape(ch: ClientHello) -> bool:
    """Rule 1 alone: the SNI looks like Tor's random "www.<base32>.com" name."""
    return ch.sni is not None and _TOR_SNI.fullmatch(ch.sni) is not None


def openssl_bare_layout(ch: ClientHello) -> bool:
    """Rule 3: the extension layout of Tor's OpenSSL client (see the module docstring)."""
    types = [t for t, _ in ch.extensions]
    if not types or types[0] != 0 or _SESSION_TICKET in types:
        return False
    if any(t not in _OPENSSL_UNASKED for t in types):
        return False
    if ch.compression_methods != b"\x00":
        return False
    return not any(c & 0x0F0F == 0x0A0A and c >> 8 == c & 0xFF for c in ch.cipher_suites)


def tls_traits(ch: ClientHello) -> bool:
    """True if the ClientHello has all of Tor's client traits: the fake "www.<base32>.com" SNI,
    no ALPN, and the bare-OpenSSL extension layout (see the module docstring for sources)."""
    return sni_shape(ch) and not ch.alpn and openssl_bare_layout(ch)
