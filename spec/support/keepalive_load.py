#!/usr/bin/python3
"""keepalive_load.py — load for the drain spec that tells apart what wrk
lumps together as "socket errors".

    /usr/bin/python3 spec/support/keepalive_load.py PORT CONNECTIONS

CONNECTIONS threads each send GET /healthz over a keep-alive connection,
again and again, reconnecting when an answer says "Connection: close", until
the server is gone (a connection is refused) or 60 s pass. Prints "running"
once every connection has had an answer, then, at the end, one JSON line:

    ok        answers with a 2xx status
    non_2xx   answers with any other status
    dropped   requests sent and never answered: the connection was reset
              or closed before the whole answer came (a drain must make none)
    refused   connections refused: the listener is gone (expected at the end)
"""
import http.client
import json
import sys
import threading
import time

port, count = int(sys.argv[1]), int(sys.argv[2])
deadline = time.monotonic() + 60
lock = threading.Lock()
totals = {"ok": 0, "non_2xx": 0, "dropped": 0, "refused": 0}
answered_once = threading.Semaphore(0)


def add(key):
    with lock:
        totals[key] += 1


def client():
    first = True
    conn = None
    while time.monotonic() < deadline:
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                conn.connect()
            except ConnectionRefusedError:
                add("refused")
                return
            except (TimeoutError, OSError):  # a SYN the draining listener dropped, retried
                conn = None
                continue
        try:
            conn.request("GET", "/healthz")
            res = conn.getresponse()
            res.read()
        except (ConnectionError, http.client.HTTPException, TimeoutError, OSError):
            add("dropped")
            conn.close()
            conn = None
            continue
        add("ok" if 200 <= res.status < 300 else "non_2xx")
        if first:
            answered_once.release()
            first = False
        if res.will_close:
            conn.close()
            conn = None


threads = [threading.Thread(target=client, daemon=True) for _ in range(count)]
for t in threads:
    t.start()
for _ in range(count):
    answered_once.acquire()
print("running", flush=True)
for t in threads:
    t.join(max(0.0, deadline - time.monotonic()))
print(json.dumps(totals), flush=True)
