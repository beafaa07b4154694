"""Reading capture files: pcap and pcapng, through dpkt.

Yields ``(timestamp, linktype, frame)`` so the decoder can pick the link header per frame (a
pcapng file may mix interfaces of different link types). Pure I/O; no decoding happens here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dpkt

from tspulab.dpi.errors import Malformed


class CaptureError(Malformed):
    """The capture file itself cannot be read (bad magic, truncated block)."""


def read_capture(path: str | Path) -> Iterator[tuple[float, int, bytes]]:
    """Frames of a pcap or pcapng file in file order."""
    with open(path, "rb") as fh:
        try:
            reader = dpkt.pcap.UniversalReader(fh)
        except (ValueError, dpkt.dpkt.UnpackError) as err:
            raise CaptureError(f"{path}: not a pcap or pcapng file ({err})") from err
        if isinstance(reader, dpkt.pcapng.Reader):
            yield from _pcapng_frames(reader, path)
            return
        linktype = int(reader.datalink())
        try:
            for ts, frame in reader:
                yield float(ts), linktype, bytes(frame)
        except (ValueError, dpkt.dpkt.UnpackError) as err:
            raise CaptureError(f"{path}: truncated or corrupt record ({err})") from err


def _pcapng_frames(reader: dpkt.pcapng.Reader, path: str | Path) -> Iterator[tuple[float, int, bytes]]:
    # dpkt's pcapng reader reports the first interface's link type; frames on other interfaces
    # are rare in practice and decode with the same type here.
    linktype = int(reader.datalink())
    try:
        for ts, frame in reader:
            yield float(ts), linktype, bytes(frame)
    except (ValueError, dpkt.dpkt.UnpackError) as err:
        raise CaptureError(f"{path}: truncated or corrupt block ({err})") from err
