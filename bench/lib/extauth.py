#!/usr/bin/env python3
# ejabberd external authentication for benchmarks ONLY: every user exists
# and every password is accepted, so that thousands of test users need no
# registration (ejabberdctl register starts an Erlang node per user).
# Protocol: 2-byte big-endian length + "op:user:server[:password]";
# answer 2-byte length (2) + 2-byte result (1 true, 0 false).
import struct, sys
inp, out = sys.stdin.buffer, sys.stdout.buffer
while True:
    head = inp.read(2)
    if len(head) < 2:
        break
    (n,) = struct.unpack(">H", head)
    op = inp.read(n).split(b":", 1)[0]
    ok = op in (b"auth", b"isuser")
    out.write(struct.pack(">HH", 2, 1 if ok else 0))
    out.flush()
