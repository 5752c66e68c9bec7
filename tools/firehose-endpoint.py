#!/usr/bin/python3
"""firehose-endpoint.py — a local Amazon Data Firehose for the test suite.

    /usr/bin/python3 tools/firehose-endpoint.py PORT DIR [options]

Listens on 127.0.0.1:PORT (HTTP/1.1, keep-alive) and answers the one call
moonkeep makes, PutRecordBatch, the way Firehose does. Run it with Debian's
/usr/bin/python3: the signature check uses Debian's python3-botocore.

Every Firehose call is checked before it is accepted:
  - POST /, X-Amz-Target: Firehose_20150804.PutRecordBatch, Content-Type:
    application/x-amz-json-1.1;
  - the SigV4 signature: the request is rebuilt from what was received
    (method, path, the headers named in SignedHeaders, the body) and signed
    again with botocore.auth.SigV4Auth and the credentials of the access
    key named in the Authorization header (one of --key, or the pair served
    by --serve-credentials); the Authorization header botocore computes must
    be the one received, byte for byte, else 403 InvalidSignatureException.
    A credential set with a session token also needs X-Amz-Security-Token,
    signed, equal to its token, else 403 UnrecognizedClientException;
  - X-Amz-Date within 5 minutes of now;
  - the service limits: DeliveryStreamName is --stream, 1 to 500 records,
    each record's data at most 1,000 KiB (1,024,000 bytes), the body at
    most 4 MiB, else 400 InvalidArgumentException (ResourceNotFoundException
    for another stream).

Files in DIR (each line appended and flushed at once):
  records.jsonl      one line per record accepted: {"data": <decoded text>}
                     (in the order accepted)
  requests.jsonl     one line per Firehose call: {"status", "records",
                     "failed", "access_key", "token", "signed_headers",
                     "error"} (error: why it was refused, or null)
  credentials.jsonl  one line per GET /credentials: {"authorization"}

Other paths:
  GET /credentials   with --serve-credentials AKID:SECRET:TOKEN, the ECS
                     task-role answer (AccessKeyId, SecretAccessKey, Token,
                     Expiration = now + --credentials-ttl seconds, RoleArn);
                     with --credentials-auth TOKEN, only for a request whose
                     Authorization header is TOKEN (else 401)
  POST /_control     JSON {"mode": M, "count": N, "every": K}: the next N
                     Firehose calls (that pass the checks) are answered by
                     mode M, then "normal" again:
                       normal     200, every record accepted
                       throttle   400 ThrottlingException
                       error500   500 InternalFailure
                       partial    200 with FailedPutCount > 0: the records
                                  at positions 0, K, 2K... of the call get
                                  ErrorCode ServiceUnavailableException and
                                  are not recorded (K defaults to 3)
  GET /_state        JSON {"accepted", "calls", "mode", "left"}

Options: --key AKID:SECRET[:TOKEN] (repeatable), --region (us-east-1),
--stream (moonkeep-test), --serve-credentials, --credentials-ttl (3600),
--credentials-auth. Stop it with SIGTERM or SIGINT.
"""
import argparse
import base64
import binascii
import datetime
import hmac
import json
import os
import signal
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

TARGET = "Firehose_20150804.PutRecordBatch"
CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_RECORDS = 500
MAX_RECORD_BYTES = 1000 * 1024
MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_SKEW_S = 300


class Refused(Exception):
    def __init__(self, status, error_type, message):
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.keys = {}          # access key -> (secret, token or None)
        for spec in args.key:
            self.add_key(spec)
        self.served = None
        if args.serve_credentials:
            self.served = self.add_key(args.serve_credentials)
        self.mode = "normal"
        self.left = 0
        self.every = 3
        self.accepted = 0
        self.calls = 0
        os.makedirs(args.dir, exist_ok=True)
        self.records = open(os.path.join(args.dir, "records.jsonl"), "a")
        self.requests = open(os.path.join(args.dir, "requests.jsonl"), "a")
        self.credentials = open(os.path.join(args.dir, "credentials.jsonl"), "a")

    def add_key(self, spec):
        parts = spec.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            sys.exit("bad credentials %r: AKID:SECRET[:TOKEN]" % spec)
        token = parts[2] if len(parts) == 3 and parts[2] else None
        self.keys[parts[0]] = (parts[1], token)
        return parts[0], parts[1], token

    @staticmethod
    def append(f, obj):
        f.write(json.dumps(obj) + "\n")
        f.flush()


def verify_signature(state, method, path, headers, body):
    """Returns (access_key, token_sent, signed_headers) or raises Refused."""
    auth = headers.get("authorization")
    if not auth or not auth.startswith("AWS4-HMAC-SHA256 "):
        raise Refused(403, "MissingAuthenticationTokenException", "no SigV4 Authorization header")
    fields = {}
    for part in auth[len("AWS4-HMAC-SHA256 "):].split(","):
        name, _, value = part.strip().partition("=")
        fields[name] = value
    credential = fields.get("Credential", "")
    signed = fields.get("SignedHeaders", "")
    access_key = credential.split("/", 1)[0]
    if access_key not in state.keys:
        raise Refused(403, "UnrecognizedClientException", "unknown access key %r" % access_key)
    secret, token = state.keys[access_key]
    names = [n for n in signed.split(";") if n]
    for required in ("host", "x-amz-date"):
        if required not in names:
            raise Refused(403, "InvalidSignatureException", "%s is not signed" % required)
    for name in names:
        if name not in headers:
            raise Refused(403, "InvalidSignatureException", "signed header %s missing" % name)
    sent_token = headers.get("x-amz-security-token")
    if token is not None:
        if sent_token != token or "x-amz-security-token" not in names:
            raise Refused(403, "UnrecognizedClientException",
                          "the security token included in the request is invalid (or unsigned)")
    elif sent_token is not None:
        raise Refused(403, "UnrecognizedClientException", "a security token for keys that have none")
    amz_date = headers["x-amz-date"]
    try:
        when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ")
    except ValueError:
        raise Refused(403, "InvalidSignatureException", "bad X-Amz-Date %r" % amz_date)
    skew = abs((datetime.datetime.utcnow() - when).total_seconds())
    if skew > MAX_SKEW_S:
        raise Refused(403, "InvalidSignatureException", "X-Amz-Date off by %d s" % skew)

    # The request as received, with exactly the headers the client signed,
    # signed again by botocore with the same timestamp.
    request = AWSRequest(method=method, url="http://%s%s" % (headers["host"], path),
                         data=body, headers={n: headers[n] for n in names})
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(access_key, secret, token), "firehose", state.args.region)
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    expected = "AWS4-HMAC-SHA256 Credential=%s, SignedHeaders=%s, Signature=%s" % (
        signer.scope(request), signer.signed_headers(signer.headers_to_sign(request)), signature)
    if not hmac.compare_digest(expected.encode(), auth.encode()):
        raise Refused(403, "InvalidSignatureException",
                      "signature mismatch: expected %r, got %r" % (expected, auth))
    return access_key, sent_token is not None, signed


def decode_batch(state, body):
    if len(body) > MAX_BODY_BYTES:
        raise Refused(400, "InvalidArgumentException", "body of %d bytes over 4 MiB" % len(body))
    try:
        doc = json.loads(body)
    except ValueError:
        raise Refused(400, "SerializationException", "body is not JSON")
    if doc.get("DeliveryStreamName") != state.args.stream:
        raise Refused(400, "ResourceNotFoundException",
                      "Firehose %r not found" % doc.get("DeliveryStreamName"))
    records = doc.get("Records")
    if not isinstance(records, list) or not 1 <= len(records) <= MAX_RECORDS:
        raise Refused(400, "InvalidArgumentException", "Records must hold 1 to 500 records")
    out = []
    for r in records:
        try:
            data = base64.b64decode(r["Data"], validate=True)
        except (KeyError, TypeError, binascii.Error):
            raise Refused(400, "InvalidArgumentException", "a record's Data is not base64")
        if len(data) > MAX_RECORD_BYTES:
            raise Refused(400, "InvalidArgumentException", "a record of %d bytes over 1,000 KiB" % len(data))
        out.append(data)
    return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, obj, error_type=None):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if error_type:
            self.send_header("x-amzn-ErrorType", error_type)
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def lower_headers(self):
        out = {}
        for name, value in self.headers.items():
            out[name.lower()] = value
        return out

    def do_GET(self):
        st = self.state
        if self.path == "/credentials" and st.served:
            auth = self.headers.get("Authorization")
            with st.lock:
                st.append(st.credentials, {"authorization": auth})
            if st.args.credentials_auth and auth != st.args.credentials_auth:
                return self.reply(401, {"message": "bad authorization token"})
            akid, secret, token = st.served
            expires = datetime.datetime.utcnow() + datetime.timedelta(seconds=st.args.credentials_ttl)
            return self.reply(200, {
                "RoleArn": "arn:aws:iam::123456789012:role/moonkeep-test",
                "AccessKeyId": akid, "SecretAccessKey": secret, "Token": token,
                "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ")})
        if self.path == "/_state":
            with st.lock:
                return self.reply(200, {"accepted": st.accepted, "calls": st.calls,
                                        "mode": st.mode, "left": st.left})
        self.reply(404, {"message": "not found"})

    def do_POST(self):
        st = self.state
        body = self.read_body()
        if self.path == "/_control":
            cmd = json.loads(body or b"{}")
            with st.lock:
                st.mode = cmd.get("mode", "normal")
                st.left = int(cmd.get("count", 1))
                st.every = max(1, int(cmd.get("every", 3)))
            return self.reply(200, {"ok": True})
        headers = self.lower_headers()
        entry = {"status": None, "records": 0, "failed": 0, "access_key": None,
                 "token": False, "signed_headers": None, "error": None}
        try:
            if self.path != "/" or headers.get("x-amz-target") != TARGET:
                raise Refused(400, "UnknownOperationException", "not PutRecordBatch")
            if headers.get("content-type") != CONTENT_TYPE:
                raise Refused(400, "SerializationException", "Content-Type %r" % headers.get("content-type"))
            entry["access_key"], entry["token"], entry["signed_headers"] = \
                verify_signature(st, "POST", self.path, headers, body)
            records = decode_batch(st, body)
        except Refused as refused:
            entry.update(status=refused.status, error="%s: %s" % (refused.error_type, refused.message))
            with st.lock:
                st.calls += 1
                st.append(st.requests, entry)
            return self.reply(refused.status, {"__type": refused.error_type, "message": refused.message},
                              refused.error_type)

        with st.lock:
            st.calls += 1
            mode = st.mode if st.left > 0 else "normal"
            if st.left > 0:
                st.left -= 1
            every = st.every
            entry["records"] = len(records)
            if mode == "throttle":
                entry.update(status=400, error="ThrottlingException (asked)")
                st.append(st.requests, entry)
                return self.reply(400, {"__type": "ThrottlingException", "message": "Rate exceeded."},
                                  "ThrottlingException")
            if mode == "error500":
                entry.update(status=500, error="InternalFailure (asked)")
                st.append(st.requests, entry)
                return self.reply(500, {"__type": "InternalFailure", "message": "We encountered an internal error."},
                                  "InternalFailure")
            responses = []
            failed = 0
            for i, data in enumerate(records):
                if mode == "partial" and i % every == 0:
                    failed += 1
                    responses.append({"ErrorCode": "ServiceUnavailableException",
                                      "ErrorMessage": "Slow down."})
                    continue
                st.accepted += 1
                st.append(st.records, {"data": data.decode("utf-8", "replace")})
                responses.append({"RecordId": uuid.uuid4().hex})
            entry.update(status=200, failed=failed)
            st.append(st.requests, entry)
        self.reply(200, {"FailedPutCount": failed, "Encrypted": False, "RequestResponses": responses})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("dir")
    parser.add_argument("--key", action="append", default=[])
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--stream", default="moonkeep-test")
    parser.add_argument("--serve-credentials")
    parser.add_argument("--credentials-ttl", type=int, default=3600)
    parser.add_argument("--credentials-auth")
    args = parser.parse_args()

    Handler.state = State(args)
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("firehose-endpoint listening on 127.0.0.1:%d" % args.port, flush=True)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
