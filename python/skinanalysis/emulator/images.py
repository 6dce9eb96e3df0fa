"""Image helpers, standard library only.

* ``sniff`` reads the format and pixel size from a JPEG or PNG header, which
  is all the emulated engine needs to decide between error_decode_image,
  error_below_min_image_size and success.
* ``encode_png`` writes RGB/RGBA PNGs with zlib.
* ``encode_jpeg_blocks`` writes a real baseline JPEG (YCbCr 4:4:4, standard
  DC Huffman tables) where every 8x8 block is a flat colour: only DC
  coefficients are coded, so it is fast in pure Python and any decoder reads it.
"""

import struct
import zlib

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"

# SOF markers carrying frame dimensions (everything in C0..CF except DHT,
# JPG and DAC).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def sniff(data):
    """Return ``(fmt, width, height)`` with fmt 'jpeg' or 'png', or None."""
    if data.startswith(PNG_MAGIC):
        if len(data) < 33 or data[12:16] != b"IHDR":
            return None
        width, height = struct.unpack(">II", data[16:24])
        if width == 0 or height == 0:
            return None
        return "png", width, height
    if data.startswith(JPEG_MAGIC):
        return _sniff_jpeg(data)
    return None


def _sniff_jpeg(data):
    pos = 2
    size = len(data)
    while pos + 4 <= size:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # EOI or SOS before any SOF
            return None
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if length < 2:
            return None
        if marker in _SOF_MARKERS:
            if pos + 9 > size:
                return None
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            if width == 0 or height == 0:
                return None
            return "jpeg", width, height
        pos += 2 + length
    return None


def _png_chunk(kind, payload):
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))


def encode_png(width, height, rows, alpha=True, level=6):
    """PNG from ``rows``: an iterable of ``height`` byte strings of
    ``width * (4 if alpha else 3)`` bytes each (filter type 0 is added here)."""
    raw = b"".join(b"\x00" + bytes(row) for row in rows)
    colour_type = 6 if alpha else 2
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (PNG_MAGIC + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(raw, level)) + _png_chunk(b"IEND", b""))


# --- JPEG ------------------------------------------------------------------

# Standard DC tables (ITU T.81 Annex K.3): code-length counts and symbols.
_DC_LUMA_BITS = (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0)
_DC_CHROMA_BITS = (0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0)
_DC_VALUES = tuple(range(12))
# A minimal AC table: EOB (0x00) and ZRL (0xF0), two-bit codes. Only EOB is used.
_AC_BITS = (0, 2) + (0,) * 14
_AC_VALUES = (0x00, 0xF0)
_QUANT = 8  # flat quantiser: DC coefficient of a flat block v is 8*(v-128)/8


def _huffman_codes(bits, values):
    codes = {}
    code = 0
    k = 0
    for length in range(1, 17):
        for _ in range(bits[length - 1]):
            codes[values[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return codes


_DC_LUMA = _huffman_codes(_DC_LUMA_BITS, _DC_VALUES)
_DC_CHROMA = _huffman_codes(_DC_CHROMA_BITS, _DC_VALUES)
_AC_EOB = _huffman_codes(_AC_BITS, _AC_VALUES)[0x00]


class _BitWriter:
    def __init__(self):
        self.out = bytearray()
        self.acc = 0
        self.nbits = 0

    def write(self, value, length):
        self.acc = (self.acc << length) | (value & ((1 << length) - 1))
        self.nbits += length
        while self.nbits >= 8:
            self.nbits -= 8
            byte = (self.acc >> self.nbits) & 0xFF
            self.out.append(byte)
            if byte == 0xFF:
                self.out.append(0x00)  # byte stuffing
        self.acc &= (1 << self.nbits) - 1

    def flush(self):
        if self.nbits:
            self.write((1 << (8 - self.nbits)) - 1, 8 - self.nbits)
        return bytes(self.out)


def _dht(table_class, table_id, bits, values):
    payload = bytes([(table_class << 4) | table_id]) + bytes(bits) + bytes(values)
    return b"\xff\xc4" + struct.pack(">H", len(payload) + 2) + payload


def rgb_to_ycbcr(r, g, b):
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    return (min(255, max(0, int(round(y)))), min(255, max(0, int(round(cb)))),
            min(255, max(0, int(round(cr)))))


def encode_jpeg_blocks(width, height, block_rgb):
    """Baseline JPEG of ``width`` x ``height`` where block (bx, by) of 8x8
    pixels has the colour ``block_rgb(bx, by) -> (r, g, b)``."""
    bw = (width + 7) // 8
    bh = (height + 7) // 8
    header = bytearray(b"\xff\xd8")
    header += b"\xff\xe0" + struct.pack(">H5sBBBHHBB", 16, b"JFIF\x00", 1, 1, 0, 1, 1, 0, 0)
    header += b"\xff\xdb" + struct.pack(">HB", 67, 0) + bytes([_QUANT] * 64)
    header += b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3)
    header += bytes([1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0])
    header += _dht(0, 0, _DC_LUMA_BITS, _DC_VALUES)
    header += _dht(0, 1, _DC_CHROMA_BITS, _DC_VALUES)
    header += _dht(1, 0, _AC_BITS, _AC_VALUES)
    header += b"\xff\xda" + struct.pack(">HB", 12, 3) + bytes([1, 0x00, 2, 0x10, 3, 0x10, 0, 63, 0])
    writer = _BitWriter()
    tables = (_DC_LUMA, _DC_CHROMA, _DC_CHROMA)
    eob_code, eob_len = _AC_EOB
    pred = [0, 0, 0]
    cache = {}
    for by in range(bh):
        for bx in range(bw):
            rgb = block_rgb(bx, by)
            ycc = cache.get(rgb)
            if ycc is None:
                ycc = cache[rgb] = rgb_to_ycbcr(*rgb)
            for comp in range(3):
                dc = ycc[comp] - 128
                diff = dc - pred[comp]
                pred[comp] = dc
                magnitude = abs(diff)
                category = magnitude.bit_length()
                code, length = tables[comp][category]
                writer.write(code, length)
                if category:
                    writer.write(diff if diff > 0 else diff + (1 << category) - 1, category)
                writer.write(eob_code, eob_len)
    return bytes(header) + writer.flush() + b"\xff\xd9"


def scaled_size(width, height, max_side):
    """(w, h) scaled down so the long side is at most ``max_side``."""
    long_side = max(width, height)
    if long_side <= max_side:
        return width, height
    factor = max_side / long_side
    return max(1, int(round(width * factor))), max(1, int(round(height * factor)))
