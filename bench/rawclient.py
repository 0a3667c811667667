"""Serial HTTP/1.1 client on one keep-alive socket, for batch-1 latency without a client
library's own cost: Go's net/http client adds 0.3-0.7 ms per request on this project's 2-vCPU
machine (a health check: 0.38 ms p50 through bench/loadgen, 0.10 ms here).

usage: rawclient.py HOST PORT PATH BODY_FILE HEADER_LEN|- N  ->  one JSON line
  {"p50_ms", "p90_ms", "status"}: POSTs BODY_FILE N times after 20 untimed requests, with
  Inference-Header-Content-Length: HEADER_LEN unless it is "-".
"""
import json
import socket
import sys
import time

host, port, path, body_file, header_len, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6])
body = open(body_file, "rb").read()
head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\n"
if header_len != "-":
    head += f"Inference-Header-Content-Length: {header_len}\r\n"
request = head.encode() + b"\r\n" + body
sock = socket.create_connection((host, port))
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def once():
    sock.sendall(request)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("connection closed")
        buf += chunk
    header, rest = buf.split(b"\r\n\r\n", 1)
    lines = header.split(b"\r\n")
    length = [int(l.split(b":", 1)[1]) for l in lines if l.lower().startswith(b"content-length:")]
    if not length:
        raise SystemExit("response without Content-Length")
    while len(rest) < length[0]:
        rest += sock.recv(65536)
    return int(lines[0].split(b" ")[1])


times, seen = [], set()
for i in range(n + 20):
    t = time.perf_counter()
    seen.add(once())
    if i >= 20:
        times.append(time.perf_counter() - t)
times.sort()
print(json.dumps({"p50_ms": round(times[len(times) // 2] * 1e3, 3), "p90_ms": round(times[int(len(times) * 0.9)] * 1e3, 3), "status": sorted(seen)}, separators=(",", ":")))
