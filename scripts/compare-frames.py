#!/usr/bin/env python3
"""Compares what the edge runtime drew, for the emulated Pi test (scripts/test-pi-emulated).

    compare-frames.py fb-png FRAMEBUFFER PNG WIDTH ROWS
        The first ROWS rows of WIDTH pixels of an RGB565 framebuffer file against a PNG frame:
        each pixel, widened to 8 bits per channel, within one RGB565 step (8 levels) of the
        PNG's, as the edge runtime's own framebuffer test allows.
    compare-frames.py xwd-png SCREENSHOT.xwd PNG ROWS
        An X screenshot (`xwd -root`, 24/32-bit TrueColor) against a PNG of the same width: the
        first ROWS rows must be equal pixel for pixel.
    compare-frames.py png-png A B LEVELS
        Two PNGs of the same size: every channel within LEVELS of the other's; prints how many
        differ at all.

Python's standard library only (zlib), so it runs wherever the emulated Pi test does. Exits 0
on a match, 1 (with the first difference) otherwise.
"""
import struct
import sys
import zlib


def png_rgb(path):
    """(width, height, rows of RGB bytes) of an 8-bit RGB or RGBA, non-interlaced PNG."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit(f"{path}: not a PNG")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    channels = {2: 3, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace:
        sys.exit(f"{path}: only 8-bit RGB/RGBA, non-interlaced PNGs are read here")
    raw, stride, rows, prev = zlib.decompress(idat), width * channels, [], bytearray(width * channels)
    for y in range(height):
        line = raw[y * (stride + 1):(y + 1) * (stride + 1)]
        kind, cur = line[0], bytearray(line[1:])
        for i in range(stride):
            a = cur[i - channels] if i >= channels else 0
            b, c = prev[i], prev[i - channels] if i >= channels else 0
            if kind == 1:
                cur[i] = (cur[i] + a) & 255
            elif kind == 2:
                cur[i] = (cur[i] + b) & 255
            elif kind == 3:
                cur[i] = (cur[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                cur[i] = (cur[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(cur[x * channels + k] for x in range(width) for k in range(3)))
        prev = cur
    return width, height, rows


def fb_png(fb_path, png_path, width, rows):
    fb = open(fb_path, "rb").read()
    w, h, png = png_rgb(png_path)
    if w != width or h < rows or len(fb) < width * rows * 2:
        sys.exit(f"sizes differ: framebuffer {len(fb)} bytes, PNG {w}x{h}, wanted {width}x{rows}")
    for y in range(rows):
        for x in range(width):
            (v,) = struct.unpack_from("<H", fb, (y * width + x) * 2)
            got = ((v >> 11) << 3, ((v >> 5) & 63) << 2, (v & 31) << 3)
            want = png[y][x * 3:x * 3 + 3]
            if any(abs(g - w) > 8 for g, w in zip(got, want)):
                print(f"pixel ({x},{y}): framebuffer {got}, PNG {tuple(want)}")
                sys.exit(1)


def xwd_rgb(path):
    """(width, height, rows of RGB bytes) of a ZPixmap TrueColor XWD file."""
    data = open(path, "rb").read()
    fields = struct.unpack(">25I", data[:100])
    header_size, _, pixmap_format, _, width, height = fields[:6]
    byte_order, bits_per_pixel, bytes_per_line = fields[7], fields[11], fields[12]
    masks, ncolors = fields[14:17], fields[19]
    if pixmap_format != 2 or bits_per_pixel != 32:
        sys.exit(f"{path}: only 32-bit ZPixmap XWD files are read here")
    shifts = [m.bit_length() - 8 for m in masks]
    pixels = data[header_size + 12 * ncolors:]
    order = "<" if byte_order == 0 else ">"
    rows = []
    for y in range(height):
        line = pixels[y * bytes_per_line:y * bytes_per_line + 4 * width]
        values = struct.unpack(f"{order}{width}I", line)
        rows.append(bytes(((v & m) >> sh) & 255 for v in values for m, sh in zip(masks, shifts)))
    return width, height, rows


def xwd_png(xwd_path, png_path, rows):
    wx, hx, shot = xwd_rgb(xwd_path)
    wp, hp, png = png_rgb(png_path)
    if wx != wp or hx < rows or hp < rows:
        sys.exit(f"sizes differ: screenshot {wx}x{hx}, PNG {wp}x{hp}, wanted {rows} rows")
    for y in range(rows):
        if shot[y] != png[y]:
            x = next(i for i in range(wx * 3) if shot[y][i] != png[y][i]) // 3
            print(f"pixel ({x},{y}): screenshot {tuple(shot[y][x * 3:x * 3 + 3])}, PNG {tuple(png[y][x * 3:x * 3 + 3])}")
            sys.exit(1)


def png_png(a_path, b_path, levels):
    wa, ha, a = png_rgb(a_path)
    wb, hb, b = png_rgb(b_path)
    if (wa, ha) != (wb, hb):
        sys.exit(f"sizes differ: {wa}x{ha} and {wb}x{hb}")
    diffs = [abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb)]
    differing = sum(1 for d in diffs if d)
    print(f"{differing} of {len(diffs)} channel values differ, by at most {max(diffs)}")
    if max(diffs) > levels:
        sys.exit(1)


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "fb-png":
        fb_png(args[0], args[1], int(args[2]), int(args[3]))
    elif mode == "xwd-png":
        xwd_png(args[0], args[1], int(args[2]))
    elif mode == "png-png":
        png_png(args[0], args[1], int(args[2]))
    else:
        sys.exit(f"unknown mode {mode}: fb-png, xwd-png or png-png")


if __name__ == "__main__":
    main()
