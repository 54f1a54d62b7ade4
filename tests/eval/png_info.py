"""Prints "WIDTH HEIGHT" of a PNG after checking it independently of libpng: the signature,
every chunk's CRC32, IHDR (8-bit RGB), and that the IDAT stream inflates to exactly
height * (1 + width * 3) bytes (one filter byte per row). Exits non-zero otherwise."""
import struct
import sys
import zlib

data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
pos, idat, width, height = 8, b"", None, None
while pos < len(data):
    (length,) = struct.unpack(">I", data[pos:pos + 4])
    kind = data[pos + 4:pos + 8]
    body = data[pos + 8:pos + 8 + length]
    (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
    assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind}"
    if kind == b"IHDR":
        width, height, depth, colour = struct.unpack(">IIBB", body[:10])
        assert depth == 8 and colour == 2, f"expected 8-bit RGB, got depth {depth} colour {colour}"
    elif kind == b"IDAT":
        idat += body
    elif kind == b"IEND":
        break
    pos += 12 + length
raw = zlib.decompress(idat)
assert len(raw) == height * (1 + width * 3), "IDAT size does not match IHDR"
print(width, height)
