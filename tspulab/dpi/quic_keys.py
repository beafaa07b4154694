"""QUIC Initial packet protection (RFC 9001 §5): versions, salts, key derivation, opening.

Everything a censor needs to read a client Initial: the per-version salt, HKDF to the client's
key, IV and header-protection key from the Destination Connection ID, and the ciphers that remove
header protection and open the AEAD. Split from quic.py, which parses headers and frames.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tspulab.dpi.errors import Malformed

if TYPE_CHECKING:
    from tspulab.dpi.quic import QuicLongHeader


class QuicVersion(IntEnum):
    """Wire version numbers this module can decrypt (plus the one it must refuse)."""

    NEGOTIATION = 0x00000000
    VERSION_1 = 0x00000001
    VERSION_2 = 0x6B3343CF
    DRAFT_29 = 0xFF00001D


# https://www.rfc-editor.org/rfc/rfc9001#section-5.2 (v1),
# https://www.rfc-editor.org/rfc/rfc9369#section-3.3.1 (v2), and the drafts' own section 5.2.
_SALT_V1 = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")
_SALT_V2 = bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9")
_SALT_DRAFT_29 = bytes.fromhex("afbfec289993d24c9e9786f19c6111e04390a899")
_SALT_DRAFT_23 = bytes.fromhex("c3eef712c72ebb5a11a7d2432bb46365bef9f502")
_SALT_DRAFT_22 = bytes.fromhex("7fbcdb0e7c66bbe9193a96cd21519ebd7a02644a")


def initial_salt(version: int) -> bytes | None:
    """The Initial salt for `version`, or None if this module cannot decrypt that version."""
    if version == QuicVersion.VERSION_1:
        return _SALT_V1
    if version == QuicVersion.VERSION_2:
        return _SALT_V2
    if 0xFF000021 <= version <= 0xFF000022:  # drafts 33-34 already use the RFC 9001 salt
        return _SALT_V1
    if 0xFF00001D <= version <= 0xFF000020:  # drafts 29-32
        return _SALT_DRAFT_29
    if 0xFF000017 <= version <= 0xFF00001C:  # drafts 23-28
        return _SALT_DRAFT_23
    if version == 0xFF000016:  # draft 22
        return _SALT_DRAFT_22
    return None


def _is_v2(version: int) -> bool:
    return version == QuicVersion.VERSION_2


# --- keys: https://www.rfc-editor.org/rfc/rfc9001#section-5.2 ----------------------------------


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    """HKDF-Extract with SHA-256 (RFC 5869 §2.2) is one HMAC."""
    return hmac.digest(salt, ikm, hashlib.sha256)


def hkdf_expand_label(secret: bytes, label: str, length: int) -> bytes:
    """TLS 1.3 HKDF-Expand-Label with an empty context (RFC 8446 §7.1); length <= 32 is 1 block."""
    return hmac.digest(secret, _expand_info(label, length), hashlib.sha256)[:length]


@functools.cache
def _expand_info(label: str, length: int) -> bytes:
    """HkdfLabel for ``label`` plus HKDF-Expand's counter byte; the few labels QUIC uses are
    built once (this sits on the per-connection path of every QUIC flow)."""
    full = b"tls13 " + label.encode("ascii")
    return length.to_bytes(2, "big") + bytes([len(full)]) + full + b"\x00\x01"


# HMAC-SHA256 (RFC 2104) from hashlib states: the key's inner and outer padded blocks are hashed
# once (``_pads``), each HMAC then copies the two states. Keys here are salts (20 B) and secrets
# (32 B), never over the 64-byte block, so they are never hashed first.
_SHA256 = hashlib.sha256()
_TRANS_36 = bytes(x ^ 0x36 for x in range(256))
_TRANS_5C = bytes(x ^ 0x5C for x in range(256))
_Pads = tuple["hashlib._Hash", "hashlib._Hash"]


def _pads(key: bytes) -> _Pads:
    if len(key) > 64:
        raise ValueError("HMAC key longer than the SHA-256 block")
    block = key.ljust(64, b"\x00")
    inner = _SHA256.copy()
    inner.update(block.translate(_TRANS_36))
    outer = _SHA256.copy()
    outer.update(block.translate(_TRANS_5C))
    return inner, outer


@functools.cache
def _salt_pads(salt: bytes) -> _Pads:
    """A version's salt is public and fixed: its HMAC states are computed once per process."""
    return _pads(salt)


def _hmac(pads: _Pads, message: bytes) -> bytes:
    inner = pads[0].copy()
    inner.update(message)
    outer = pads[1].copy()
    outer.update(inner.digest())
    return outer.digest()


@dataclass(frozen=True, slots=True)
class InitialKeys:
    """The client's Initial packet protection keys for one DCID and version."""

    key: bytes
    iv: bytes
    hp: bytes

    @classmethod
    def derive(cls, dcid: bytes, version: int, is_client: bool = True) -> InitialKeys:
        salt = initial_salt(version)
        if salt is None:
            raise Malformed(f"no Initial salt for version {version:#010x}")
        # The same HKDF as ``hkdf_extract``/``hkdf_expand_label`` (the reference, checked by
        # tests/unit/dpi/test_quic_speed.py), with HMAC's padded-key states hashed once per key:
        # OpenSSL 3's one-shot HMAC costs ~8 µs a call here, and this runs for every QUIC flow.
        initial_secret = _hmac(_salt_pads(salt), dcid)
        label = "client in" if is_client else "server in"
        secret = _hmac(_pads(initial_secret), _expand_info(label, 32))
        # https://www.rfc-editor.org/rfc/rfc9369#section-3.3.2: v2 renames the labels.
        prefix = "quicv2 " if _is_v2(version) else "quic "
        pads = _pads(secret)
        return cls(
            key=_hmac(pads, _expand_info(prefix + "key", 16))[:16],
            iv=_hmac(pads, _expand_info(prefix + "iv", 12))[:12],
            hp=_hmac(pads, _expand_info(prefix + "hp", 16))[:16],
        )

    @classmethod
    def derive_reference(cls, dcid: bytes, version: int, is_client: bool = True) -> InitialKeys:
        """``derive`` spelled with ``hkdf_extract``/``hkdf_expand_label`` (the specification the
        faster ``derive`` is tested against)."""
        salt = initial_salt(version)
        if salt is None:
            raise Malformed(f"no Initial salt for version {version:#010x}")
        initial_secret = hkdf_extract(salt, dcid)
        secret = hkdf_expand_label(initial_secret, "client in" if is_client else "server in", 32)
        prefix = "quicv2 " if _is_v2(version) else "quic "
        return cls(
            key=hkdf_expand_label(secret, prefix + "key", 16),
            iv=hkdf_expand_label(secret, prefix + "iv", 12),
            hp=hkdf_expand_label(secret, prefix + "hp", 16),
        )


class Opener:
    """Ciphers built once per key set: building them costs more than one decryption."""

    __slots__ = ("aead", "hp_mask", "iv", "iv_int")

    def __init__(self, keys: InitialKeys) -> None:
        self.aead = AESGCM(keys.key)
        # ECB keeps no state between blocks and the sample is always one block (parse_long_header
        # guarantees 20 bytes after pn_offset), so one encryptor context serves every packet.
        self.hp_mask = Cipher(algorithms.AES(keys.hp), modes.ECB()).encryptor()
        self.iv = keys.iv
        self.iv_int = int.from_bytes(keys.iv, "big")

    def open(self, datagram: bytes, header: QuicLongHeader, largest_pn: int) -> tuple[int, bytes]:
        """Remove header protection and decrypt (RFC 9001 §5.4.1, §5.3). Raises InvalidTag."""
        pn_offset = header.pn_offset
        sample = datagram[pn_offset + 4 : pn_offset + 20]
        mask = self.hp_mask.update(sample)
        first = header.first_byte ^ (mask[0] & 0x0F)  # long header: low 4 bits protected
        pn_len = (first & 0x03) + 1
        # the packet number and its mask as integers: one XOR instead of a byte loop
        truncated = int.from_bytes(datagram[pn_offset : pn_offset + pn_len], "big") ^ (
            int.from_bytes(mask[1 : 1 + pn_len], "big")
        )
        pn_bytes = truncated.to_bytes(pn_len, "big")
        packet_number = decode_packet_number(truncated, pn_len * 8, largest_pn)
        aad = bytes([first]) + datagram[header.start + 1 : pn_offset] + pn_bytes
        nonce = (self.iv_int ^ packet_number).to_bytes(12, "big")
        plain = self.aead.decrypt(nonce, datagram[pn_offset + pn_len : header.end], aad)
        return packet_number, plain


def decode_packet_number(truncated: int, pn_nbits: int, largest_pn: int) -> int:
    """https://www.rfc-editor.org/rfc/rfc9000#appendix-A.3"""
    expected = largest_pn + 1
    pn_win = 1 << pn_nbits
    pn_hwin = pn_win // 2
    pn_mask = pn_win - 1
    candidate = (expected & ~pn_mask) | truncated
    if candidate <= expected - pn_hwin and candidate < (1 << 62) - pn_win:
        return candidate + pn_win
    if candidate > expected + pn_hwin and candidate >= pn_win:
        return candidate - pn_win
    return candidate
