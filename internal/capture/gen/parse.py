"""Parses captured messages with Pyro4 itself (run by gen/main.go with /usr/bin/python3).

Reads JSON lines {"hex": raw message, "hmac_key": key or null} on stdin and writes, per
line, {"header": ..., "annotations": [[id, hex], ...], "py": ...}: the header fields as
struct.unpack sees them, the chunks in wire order as Pyro4.message.Message.recv reads them
(checking the checksum, and the HMAC when a key is given), and what Pyro4's serializers
decode from the payload. These are the golden test's expected values.
"""
import json
import marshal
import struct
import sys
import zlib

from Pyro4 import errors, message, util


class BytesConnection(object):
    """Just enough of a Pyro4 SocketConnection for Message.recv."""

    def __init__(self, data):
        self.data = data
        self.pos = 0

    def recv(self, size):
        chunk = self.data[self.pos:self.pos + size]
        if len(chunk) != size:
            raise errors.ConnectionClosedError("message truncated")
        self.pos += size
        return chunk


def tagged(v):
    if v is None:
        return {"none": True}
    if isinstance(v, bool):
        return {"bool": v}
    if isinstance(v, int):
        return {"int": v}
    if isinstance(v, float):
        return {"float": v}
    if isinstance(v, str):
        return {"str": v}
    if isinstance(v, bytes):
        return {"bytes": v.hex()}
    if isinstance(v, tuple):
        return {"tuple": [tagged(x) for x in v]}
    if isinstance(v, list):
        return {"list": [tagged(x) for x in v]}
    raise TypeError("no tagged form for %r" % type(v))


def marshal_codes(b):
    """The type codes of a marshal dump of simple values, e.g. [")", "Z*", "r0"]: code, "*" when
    FLAG_REF is set, and for a back-reference its index. Only the codes a BLBI tuple uses."""
    out = []
    pos = 0

    def u32():
        nonlocal pos
        n = int.from_bytes(b[pos:pos + 4], "little")
        pos += 4
        return n

    def one():
        nonlocal pos
        code = b[pos]
        pos += 1
        c = chr(code & 0x7F)
        out.append(c + ("*" if code & 0x80 else ""))
        if c == "r":
            out[-1] += str(u32())
        elif c in "NTF":
            pass
        elif c == "i":
            pos += 4
        elif c == "g":
            pos += 8
        elif c == "l":
            n = int.from_bytes(b[pos:pos + 4], "little", signed=True)
            pos += 4 + 2 * abs(n)
        elif c in "zZ":
            pos += 1 + b[pos]
        elif c in "aAstu":
            n = u32()
            pos += n
        elif c == ")":
            n = b[pos]
            pos += 1
            for _ in range(n):
                one()
        elif c in "([<>":
            for _ in range(u32()):
                one()
        elif c == "{":
            while b[pos] != ord("0"):
                one()
                one()
            pos += 1
        else:
            raise ValueError("marshal code %r not handled" % c)

    one()
    if pos != len(b):
        raise ValueError("marshal dump has %d trailing bytes" % (len(b) - pos))
    return out


def decode_payload(msg):
    py = {}
    data = bytes(msg.data)
    if msg.flags & message.FLAGS_COMPRESSED:
        data = zlib.decompress(data)
        py["uncompressed_len"] = len(data)
    try:
        ser = util.get_serializer_by_id(msg.serializer_id)
    except errors.SerializeError:
        ser = None
    if "BLBI" in msg.annotations:
        blbi = bytes(msg.annotations["BLBI"])
        info, obj, method = marshal.loads(blbi)
        py["blbi"] = {"info": tagged(info), "object": obj, "method": method, "codes": marshal_codes(blbi)}
    if ser is None or msg.type == message.MSG_PING:
        return py
    if msg.type == message.MSG_CONNECT:
        py["object"] = ser.loads(data).get("object")
    elif msg.type == message.MSG_INVOKE:
        obj, method, _, _ = ser.loadsCall(data)
        py["object"], py["method"] = obj, method
    elif msg.type == message.MSG_CONNECTFAIL:
        py["reason"] = ser.loads(data)
    elif msg.flags & message.FLAGS_EXCEPTION:
        py["exception"] = type(ser.loads(data)).__name__
    return py


def parse(raw, key):
    tag, ver, mtype, flags, seq, data_len, ser, ann_len, reserved, checksum = struct.unpack(
        message.Message.header_format, raw[:message.Message.header_size])
    conn = BytesConnection(raw)
    msg = message.Message.recv(conn, hmac_key=key)
    if conn.pos != len(raw):
        raise ValueError("%d bytes after the message" % (len(raw) - conn.pos))
    if sum(6 + len(v) for v in msg.annotations.values()) != ann_len:
        raise ValueError("repeated annotation ids")
    return {
        "header": {"magic": tag.decode(), "version": ver, "type": mtype, "flags": flags, "seq": seq,
                   "data_len": data_len, "serializer": ser, "ann_len": ann_len, "reserved": reserved,
                   "checksum": checksum},
        "annotations": [[k, bytes(v).hex()] for k, v in msg.annotations.items()],
        "py": decode_payload(msg),
    }


def main():
    for line in sys.stdin:
        req = json.loads(line)
        key = req.get("hmac_key")
        try:
            out = parse(bytes.fromhex(req["hex"]), key.encode() if key else None)
        except Exception:
            print("parse.py: cannot parse message %s" % req["hex"], file=sys.stderr)
            raise
        print(json.dumps(out, ensure_ascii=False, sort_keys=True))


if __name__ == "__main__":
    main()
