#!/usr/bin/env python3
"""Independent check of an MSP-signed HTTP/1.1 request (host-protocol.md §8).

Reads one request as forwarded upstream on stdin (Content-Length framing),
rebuilds the string to sign with its own code and Python's hmac module, and
compares it with the x-ms-azure-host-authorization header.

usage: verify-signature.py KEY_HEX < request
exit 0: valid; 1: invalid, unsigned or a header repeated; 2: unreadable input.
"""
import hashlib
import hmac
import sys

WS = " \t"  # optional white space trimmed from header values


def main() -> int:
    key = bytes.fromhex(sys.argv[1])
    data = sys.stdin.buffer.read()
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        print("no end of header section", file=sys.stderr)
        return 2
    lines = head.decode("ascii").split("\r\n")
    method, target, _proto = lines[0].split(" ")
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.lower() in fields:
            # The proxy forwards one copy of each header so that the host
            # sees exactly the signed set (agent.md §5.3); a second copy
            # (e.g. a client x-ms-azure-host-* header left in) is an error.
            print(f"header {name} appears twice: forwarded and signed sets differ", file=sys.stderr)
            return 1
        fields[name.lower()] = value
    length = int(fields.get("content-length", "0").strip(WS) or 0)
    body = body[:length]
    auth = fields.get("x-ms-azure-host-authorization")
    if auth is None:
        print("unsigned", file=sys.stderr)
        return 1
    scheme, guid, sig = auth.strip(WS).split(" ")

    path, qmark, query = target.partition("?")
    canon = {}
    if qmark:
        for piece in query.split("&"):
            k, _, v = piece.partition("=")
            if k:
                canon[k.lower() + v] = (k.lower(), v)
    canonical_query = "&".join(
        mk if canon[mk][1] == "" else canon[mk][0] + "=" + canon[mk][1] for mk in sorted(canon)
    )
    header_lines = "".join(
        n + ":" + fields[n].strip(WS) + "\n" for n in sorted(fields) if n != "x-ms-azure-host-authorization"
    )
    message = method.encode() + b"\n" + body + b"\n" + header_lines.encode() + path.encode() + b"\n" + canonical_query.encode()
    want = hmac.new(key, message, hashlib.sha256).hexdigest()
    if scheme != "Azure-HMAC-SHA256" or not hmac.compare_digest(want, sig):
        print(f"signature mismatch for key {guid}", file=sys.stderr)
        return 1
    print(f"valid signature by key {guid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
