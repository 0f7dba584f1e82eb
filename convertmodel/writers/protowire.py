"""Protocol Buffers wire encoding for writers that build large messages by hand.

protobuf's Python ``extend`` of a repeated float is far too slow for VGG's 138M weights, so the
Caffe and BigDL writers encode tensor payloads as packed bytes themselves, with these two helpers
(https://protobuf.dev/programming-guides/encoding/).
"""

from __future__ import annotations


def varint(n: int) -> bytes:
    """Base-128 varint of a non-negative int."""
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def length_delimited(number: int, payload: bytes) -> bytes:
    """Field ``number`` with wire type 2 (bytes, sub-message or packed repeated scalars)."""
    return varint((number << 3) | 2) + varint(len(payload)) + payload
