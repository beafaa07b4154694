"""Protocol fingerprints over single payloads: VPNs, proxies and plain protocols a TSPU looks for.

Each module is one detector: a pure function over ONE UDP or TCP payload (plus, where it matters,
whether the initiator sent it) that returns a small frozen dataclass on a match or None. None of
them raises for bad bytes. What each checks, and how many packets it needs, is in its docstring;
tspulab.dpi.classify decides which detector runs on which packet of a flow.

- ``openvpn``: hard resets, session id, plain / tls-auth / tls-crypt(-v2) layouts, TCP framing.
- ``wireguard``: the four message types with their sizes and zero reserved bytes.
- ``dtls``: DTLS 1.0/1.2 ClientHello (WebRTC, Snowflake), parsed by tls.parse_client_hello_message.
- ``ssh``: the RFC 4253 identification string.
- ``dns``: a sane header and a parsable question.
- ``tor``: relay address set, and the client TLS traits of Tor's own ClientHello.
- ``fully_encrypted``: the GFW's exemption rules for "looks random" first payloads (Wu et al. 2023).
"""
