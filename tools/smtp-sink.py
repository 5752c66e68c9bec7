#!/usr/bin/python3
"""smtp-sink.py — a tiny real SMTP server for the test suite.

    /usr/bin/python3 tools/smtp-sink.py PORT DIR [--host ADDR] [--delay-data SECONDS] [--events FILE]

Listens on 127.0.0.1:PORT, or ADDR:PORT (the compose stack's mail service
listens on 0.0.0.0 inside its container) (Debian's python3-aiosmtpd; run it with
/usr/bin/python3, which has it) and writes each message it accepts to DIR:
NNNNNN.json (the envelope: mail_from, rcpt_tos) and then NNNNNN.eml (the
message bytes as received, after dot-unstuffing), each through a temporary
name and rename(2), so a reader that sees the .eml sees all of it.

Recipients whose local part starts with "reject" are refused with
"550 5.1.1 no such user" (a permanent failure). --delay-data makes the
server wait before its reply to the end of data (a slow server).
--events appends one line per step to FILE, flushed at once, so a test can
tell what the server is doing: "data-received N" when the end of data has
arrived (before the delay), "data-replied N" just before the reply is sent.
No STARTTLS, no AUTH. Stop it with SIGTERM or SIGINT.
"""
import argparse
import asyncio
import json
import os
import signal
import sys
import threading
import time

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, folder, delay, events):
        self.folder = folder
        self.delay = delay
        self.events = events
        self.count = 0
        self.lock = threading.Lock()

    def _event(self, what, n):
        if self.events:
            with open(self.events, "a") as f:
                f.write("%s %d\n" % (what, n))

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.split("@", 1)[0].lower().startswith("reject"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
            n = self.count
            base = os.path.join(self.folder, "%06d" % n)
        self._event("data-received", n)
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        self._write(base + ".json", json.dumps({
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
        }).encode())
        self._write(base + ".eml", envelope.original_content or envelope.content)
        self._event("data-replied", n)
        return "250 2.0.0 Ok: queued"

    @staticmethod
    def _write(path, data):
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, path)


def main():
    parser = argparse.ArgumentParser(description="SMTP sink for tests")
    parser.add_argument("port", type=int)
    parser.add_argument("folder")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--delay-data", type=float, default=0.0)
    parser.add_argument("--events", default=None)
    args = parser.parse_args()
    os.makedirs(args.folder, exist_ok=True)

    controller = Controller(Sink(args.folder, args.delay_data, args.events), hostname=args.host, port=args.port)
    controller.start()
    print("smtp-sink listening on %s:%d" % (args.host, args.port), flush=True)

    # The handlers only set a flag: a threading.Event set from a signal
    # handler deadlocks when the signal lands while the main thread holds
    # the Event's own lock inside wait() (seen: a sink that never stopped).
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    while not stopping:
        time.sleep(0.2)
    controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
