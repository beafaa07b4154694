"""Typed outcomes for bytes the DPI core cannot decode.

The split follows dpkt's ``NeedData`` / ``UnpackError``: a parser that runs out of bytes says
*truncated* (more bytes might complete it, e.g. the next TCP segment), while one that finds a
contradiction says *malformed* (no amount of further bytes fixes it). Callers on the hot path catch
``DecodeError`` and turn it into a per-flow outcome; nothing below it escapes the core.
"""

from __future__ import annotations


class DecodeError(Exception):
    """Base: bytes could not be decoded."""


class NeedData(DecodeError):
    """Truncated: more bytes would be needed (dpkt's NeedData idea)."""


class Malformed(DecodeError):
    """Bytes contradict the format (a length that cannot be right, a bad type)."""


class Unsupported(DecodeError):
    """Well-formed, but outside what the core reads (not IP, an unknown link type)."""
