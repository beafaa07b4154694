"""Reading capture files: pcap and pcapng, through dpkt.

Yields ``(timestamp, linktype, frame)`` so the decoder picks the link header per frame. A pcapng
file reports its first interface's link type for every frame (dpkt's reader exposes no other);
the shipped captures have one interface each. Pure I/O; no decoding happens here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dpkt

from tspulab.dpi.errors import Malformed


class CaptureError(Malformed):
    """The capture file itself cannot be read (bad magic, truncated record or block)."""


def read_capture(path: str | Path) -> Iterator[tuple[float, int, bytes]]:
    """Frames of a pcap or pcapng file in file order."""
    with open(path, "rb") as fh:
        try:
            reader = dpkt.pcap.UniversalReader(fh)
        except (ValueError, dpkt.dpkt.UnpackError) as err:
            raise CaptureError(f"{path}: not a pcap or pcapng file ({err})") from err
        linktype = int(reader.datalink())
        try:
            for ts, frame in reader:
                yield float(ts), linktype, bytes(frame)
        except (ValueError, dpkt.dpkt.UnpackError) as err:
            raise CaptureError(f"{path}: truncated or corrupt record ({err})") from err
