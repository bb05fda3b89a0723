#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (fuzz/corpus/<target>/) from tern's test scenarios.

Text seeds are the byte-string literals of the text-protocol tests (tests/text_protocol.rs,
protocol/src/text/tests.rs), decoded from Rust escapes; binary seeds are one well-formed packet
per opcode plus the packets of the binary tests that are spelled as byte literals; meta seeds are
the meta lines of the meta tests and of tests/text_protocol.rs, each once whole and once behind
the target's command-prefix byte, plus one line per command and flag. Each seed
starts with the targets' knob bytes (see fuzz/src/lib.rs: limits mode, then a 16-bit split point)
and the connection target's seeds are whole scenario pipelines. Generated, never committed:
run `python3 fuzz/seed_corpus.py` (tests/run.sh does) before fuzzing.
"""
import hashlib
import os
import re
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LITERAL = re.compile(rb'b"((?:[^"\\]|\\.)*)"', re.S)


def rust_bytes(body):
    """Decodes the escapes of a Rust byte-string literal body."""
    out = bytearray()
    i = 0
    while i < len(body):
        c = body[i]
        if c != ord('\\'):
            out.append(c)
            i += 1
            continue
        e = chr(body[i + 1])
        if e == 'x':
            out.append(int(body[i + 2:i + 4], 16))
            i += 4
            continue
        if e == '\n':  # line continuation: skip the newline and leading whitespace
            i += 2
            while i < len(body) and body[i] in b' \t':
                i += 1
            continue
        out += {'n': b'\n', 'r': b'\r', 't': b'\t', '0': b'\0', '\\': b'\\', '"': b'"',
                "'": b"'"}[e]
        i += 2
    return bytes(out)


def literals(*paths):
    found = []
    for p in paths:
        with open(os.path.join(ROOT, p), 'rb') as f:
            for m in LITERAL.finditer(f.read()):
                found.append(rust_bytes(m.group(1)))
    return found


def knobs(mode, split):
    return bytes([mode]) + struct.pack('<H', split & 0xffff)


def packet(opcode, key=b'', extras=b'', value=b'', opaque=0, cas=0):
    body = len(extras) + len(key) + len(value)
    return struct.pack('>BBHBBHIIQ', 0x80, opcode, len(key), len(extras), 0, 0, body, opaque,
                       cas) + extras + key + value


def binary_packets():
    fl = struct.pack('>II', 5, 0)
    arith = struct.pack('>QQI', 1, 10, 0)
    return [
        packet(0x00, b'k'), packet(0x09, b'k'), packet(0x0c, b'k'), packet(0x0d, b'k'),
        packet(0x01, b'k', fl, b'value', opaque=7), packet(0x11, b'k', fl, b'v'),
        packet(0x02, b'k', fl, b'v'), packet(0x03, b'k', fl, b'v', cas=99),
        packet(0x04, b'k'), packet(0x05, b'n', arith), packet(0x06, b'n', arith),
        packet(0x07), packet(0x17), packet(0x08), packet(0x08, extras=struct.pack('>I', 10)),
        packet(0x0a), packet(0x0b), packet(0x10), packet(0x10, b'items'),
        packet(0x0e, b'k', value=b'tail'), packet(0x0f, b'k', value=b'head'),
        packet(0x1c, b'k', struct.pack('>I', 100)), packet(0x1d, b'k', struct.pack('>I', 1)),
        packet(0x1e, b'k', struct.pack('>I', 1)), packet(0x20), packet(0x21, b'PLAIN', value=b'\0u\0p'),
        packet(0x22, b'PLAIN', value=b'x'), packet(0x60, b'cluster'),
        packet(0x64, b'cluster', struct.pack('>I', 0), b'1\nh|127.0.0.1|11211\n\n'),
        packet(0x30, b'abc'), packet(0x01, b'k', fl, b'x' * 2000),
    ]


META_PREFIXES = [b'mg ', b'ms ', b'md ', b'ma ', b'mn', b'me ']
# One line per command and flag (every flag memcached 1.6.18 knows, and E/x that it refuses).
META_LINES = [
    b'mg foo v c f h k l O123 q s t u\r\n', b'mg Zm9v b k v\r\n', b'mg foo N30 R10 T60 v t\r\n',
    b'mg foo E5\r\n', b'ms foo 3 T0 F5 c k O1 q I C9 MS b\r\nbar\r\n', b'ms foo 3 ME\r\nbar\r\n',
    b'ms foo 3 MA N0\r\nbar\r\n', b'ms foo 2000 T0\r\n' + b'x' * 2000 + b'\r\n',
    b'md foo I T30 q k O2 C7\r\n', b'md foo x\r\n', b'ma n N0 J13 D2 MD T60 t c v k O5 q\r\n',
    b'ma n M+ C1\r\n', b'mn\r\n', b'me foo\r\n', b'me Zm9v b\r\n', b'mg ' + b'A' * 248 + b'== b k\r\n',
    b'mg foo a b c d e f g h i j k l m n o p q r s\r\n', b'mg foo O' + b'x' * 40 + b' v\r\n',
]


def meta_seeds(lines):
    """The meta target's seeds: each line whole (prefix byte 6: none) and, when it starts with
    a meta command, that command's prefix byte and the rest."""
    seeds = []
    for i, line in enumerate(lines):
        seeds.append(knobs(i % 8, len(line) // 2) + bytes([6]) + line)
        for pick, prefix in enumerate(META_PREFIXES):
            if line.startswith(prefix):
                rest = line[len(prefix):]
                seeds.append(knobs(i % 8, len(rest) // 2) + bytes([pick]) + rest)
                break
    return seeds


def write(target, seeds):
    d = os.path.join(ROOT, 'fuzz', 'corpus', target)
    os.makedirs(d, exist_ok=True)
    for s in seeds:
        with open(os.path.join(d, hashlib.sha1(s).hexdigest()), 'wb') as f:
            f.write(s)
    return len(seeds)


def main():
    text = [t for t in literals('tests/text_protocol.rs', 'protocol/src/text/tests.rs') if t]
    text_seeds = []
    for i, t in enumerate(text):
        text_seeds.append(knobs(i % 8, len(t) // 2) + t)
    binary = binary_packets() + [
        t for t in literals('protocol/src/binary/tests.rs', 'tests/binary_protocol.rs')
        if t[:1] == b'\x80'
    ]
    binary_seeds = [knobs(i % 8, len(p) // 2) + p for i, p in enumerate(binary)]
    # The connection target reads: one knob byte (settings), then split sizes, then bytes
    # (see fuzz/fuzz_targets/conn.rs); a pipeline of every scenario line, and each packet.
    conn_seeds = [bytes([0, 7, 3, 200]) + b''.join(text[i:i + 8]) for i in range(0, len(text), 8)]
    conn_seeds += [bytes([0, 24, 5, 64]) + b''.join(binary_packets()[i:i + 4])
                   for i in range(0, len(binary_packets()), 4)]
    n = write('text_parse', text_seeds) + write('binary_parse', binary_seeds)
    n += write('conn', conn_seeds)
    meta = [t for t in literals('protocol/src/meta/tests.rs', 'tests/text_protocol.rs')
            if t[:1] == b'm' and t[2:3] in (b' ', b'\r', b'\n')]
    n += write('meta_parse', meta_seeds(META_LINES + meta))
    print(f'{n} seeds written under fuzz/corpus/', file=sys.stderr)


if __name__ == '__main__':
    main()
