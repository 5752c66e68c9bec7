#!/usr/bin/python3
"""search_retention.py — runs the log retention function of the stack
(deploy/cloudformation/moonkeep.yml, SearchRetentionFunction: its inline
code, as CloudFormation would deploy it) against a stand-in of the search
domain's ISM API, for spec/unit/search_retention_spec.lua.

    /usr/bin/python3 spec/support/search_retention.py TEMPLATE < PLAN.json

PLAN: {"indices": [names that exist before the first step, with no policy],
       "steps": [{"request": "Create"|"Update"|"Delete", "days": "30"},
                 {"create_index": NAME}, {"edit_policy": true}, ...]}
Prints one JSON object: for each step the custom resource response
CloudFormation received and the ISM calls made; then the indices (policy
and the policy version each runs) and the policies as the domain holds them.

The stand-in behaves as OpenSearch's ISM plugin does for these calls: PUT of
a policy that exists needs its if_seq_no/if_primary_term (else 409), a new
index matching a policy's ism_template gets it, `add` leaves an index that
has a policy alone (a failed_indices entry), `change_policy` moves managed
indices to the policy's current version. Every call must carry a SigV4
signature for service es that botocore, signing the request as received
again, computes byte for byte (else 403).
"""
import contextlib
import fnmatch
import hmac
import importlib.util
import json
import os
import sys
import tempfile
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REGION = "eu-west-1"
KEY, SECRET, TOKEN = "AKIDRETENTIONSPEC", "retention-spec-secret", "retention-spec-token"


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags read as plain values."""


CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


class Domain:
    def __init__(self, indices):
        self.lock = threading.Lock()
        self.seq = 0
        self.policies = {}  # id -> {"seq_no", "primary_term", "policy"}
        self.indices = {name: {"policy_id": None, "policy_seq_no": None} for name in indices}
        self.calls = []
        self.responses = []

    def create_index(self, name):
        entry = {"policy_id": None, "policy_seq_no": None}
        for pid, p in self.policies.items():
            for t in p["policy"].get("ism_template") or []:
                if any(fnmatch.fnmatchcase(name, pat) for pat in t["index_patterns"]):
                    entry = {"policy_id": pid, "policy_seq_no": p["seq_no"]}
        self.indices[name] = entry


def signature_error(method, raw_path, headers, body):
    auth = headers.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return "no SigV4 Authorization header"
    fields = dict(part.strip().partition("=")[::2] for part in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    names = [n for n in fields.get("SignedHeaders", "").split(";") if n]
    for required in ("host", "x-amz-date", "x-amz-security-token"):
        if required not in names:
            return required + " is not signed"
    if headers.get("x-amz-security-token") != TOKEN:
        return "wrong security token"
    if not fields.get("Credential", "").endswith("/%s/es/aws4_request" % REGION):
        return "not signed for es in " + REGION
    request = AWSRequest(method=method, url="http://%s%s" % (headers["host"], raw_path),
                         data=body, headers={n: headers[n] for n in names})
    request.context["timestamp"] = headers["x-amz-date"]
    signer = SigV4Auth(Credentials(KEY, SECRET, TOKEN), "es", REGION)
    canonical = signer.canonical_request(request)
    expected = "AWS4-HMAC-SHA256 Credential=%s, SignedHeaders=%s, Signature=%s" % (
        signer.scope(request), signer.signed_headers(signer.headers_to_sign(request)),
        signer.signature(signer.string_to_sign(request, canonical), request))
    if not hmac.compare_digest(expected.encode(), auth.encode()):
        return "signature mismatch"
    return None


def make_handler(domain):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            pass

        def reply(self, status, obj):
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def handle_any(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            with domain.lock:
                if url.path.startswith("/cfn-response/"):
                    domain.responses.append({"content_type": headers.get("content-type"),
                                             "body": json.loads(body)})
                    return self.reply(200, {})
                call = {"method": self.command, "path": url.path, "query": query,
                        "body": json.loads(body) if body else None}
                domain.calls.append(call)
                problem = signature_error(self.command, self.path, headers, body)
                if problem:
                    call["refused"] = problem
                    return self.reply(403, {"message": problem})
                return self.reply(*self.ism(call))

        do_GET = do_PUT = do_POST = do_DELETE = handle_any

        def ism(self, call):
            parts = call["path"].strip("/").split("/")
            if parts[:2] != ["_plugins", "_ism"] or len(parts) != 4:
                return 404, {"error": "no such API"}
            api, arg, method, body, query = parts[2], parts[3], call["method"], call["body"], call["query"]
            if api == "policies" and method == "GET":
                p = domain.policies.get(arg)
                if p is None:
                    return 404, {"error": {"type": "status_exception", "reason": "Policy not found"}, "status": 404}
                return 200, {"_id": arg, "_version": p["seq_no"] + 1, "_seq_no": p["seq_no"],
                             "_primary_term": p["primary_term"], "policy": p["policy"]}
            if api == "policies" and method == "PUT":
                p = domain.policies.get(arg)
                given = (query.get("if_seq_no"), query.get("if_primary_term"))
                if p is not None and given != (str(p["seq_no"]), str(p["primary_term"])):
                    return 409, {"error": {"type": "version_conflict_engine_exception"}, "status": 409}
                if p is None and given != (None, None):
                    return 409, {"error": {"type": "version_conflict_engine_exception"}, "status": 409}
                domain.seq += 1
                stored = dict(body["policy"], policy_id=arg, schema_version=17, error_notification=None,
                              last_updated_time=1767225600000 + domain.seq)
                domain.policies[arg] = {"seq_no": domain.seq, "primary_term": 1, "policy": stored}
                return (201 if p is None else 200), {"_id": arg, "_seq_no": domain.seq, "_primary_term": 1,
                                                     "policy": {"policy": stored}}
            if api in ("add", "change_policy") and method == "POST":
                pid = body["policy_id"]
                if pid not in domain.policies:
                    return 404, {"error": {"reason": "Could not find policy"}}
                updated, failed = 0, []
                for name, entry in sorted(domain.indices.items()):
                    if not fnmatch.fnmatchcase(name, arg):
                        continue
                    if api == "add" and entry["policy_id"] is not None:
                        failed.append({"index_name": name, "reason": "This index already has a policy, "
                                       "use the update policy API to update index policies."})
                    elif api == "change_policy" and entry["policy_id"] is None:
                        failed.append({"index_name": name, "reason": "This index is not being managed."})
                    else:
                        entry.update(policy_id=pid, policy_seq_no=domain.policies[pid]["seq_no"])
                        updated += 1
                return 200, {"updated_indices": updated, "failures": bool(failed), "failed_indices": failed}
            return 405, {"error": "unexpected %s %s" % (method, call["path"])}

    return Handler


class Context:
    log_stream_name = "2026/01/31/[$LATEST]retention-spec"

    @staticmethod
    def get_remaining_time_in_millis():
        return 120000


def main():
    template = yaml.load(open(sys.argv[1]), Loader=CfnLoader)
    resources = template["Resources"]
    code = resources["SearchRetentionFunction"]["Properties"]["Code"]["ZipFile"]
    props = resources["SearchRetention"]["Properties"]
    plan = json.load(sys.stdin)

    os.environ.update(AWS_REGION=REGION, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET,
                      AWS_SESSION_TOKEN=TOKEN, AWS_CONFIG_FILE="/dev/null",
                      AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_EC2_METADATA_DISABLED="true")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "index.py")
        with open(path, "w") as f:
            f.write(code)
        spec = importlib.util.spec_from_file_location("index", path)
        function = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(function)

    domain = Domain(plan.get("indices", []))
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(domain))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = "http://127.0.0.1:%d" % server.server_address[1]

    out = {"steps": []}
    previous = None
    for n, step in enumerate(plan["steps"]):
        if "create_index" in step:
            with domain.lock:
                domain.create_index(step["create_index"])
            continue
        if "edit_policy" in step:  # someone changed the policy by hand
            with domain.lock:
                p = next(iter(domain.policies.values()))
                domain.seq += 1
                p["seq_no"] = domain.seq
                p["policy"] = dict(p["policy"], description="edited by hand")
            continue
        resource = {"ServiceToken": "arn:aws:lambda:%s:123456789012:function:spec" % REGION,
                    "DomainEndpoint": base, "PolicyId": "moonkeep-log-retention",
                    "IndexPattern": props["IndexPattern"], "RetentionDays": step.get("days", "30")}
        event = {"RequestType": step["request"], "ResponseURL": "%s/cfn-response/%d" % (base, n),
                 "StackId": "arn:aws:cloudformation:%s:123456789012:stack/moonkeep/1" % REGION,
                 "RequestId": "request-%d" % n, "LogicalResourceId": "SearchRetention",
                 "ResourceType": "Custom::SearchRetention", "ResourceProperties": resource}
        if step["request"] != "Create":
            event["PhysicalResourceId"] = "moonkeep-log-retention"
            event["OldResourceProperties"] = previous or resource
        previous = resource
        first_call = len(domain.calls)
        with contextlib.redirect_stdout(sys.stderr):  # the function's log lines
            function.handler(event, Context())
        with domain.lock:
            out["steps"].append({"request": step["request"], "days": resource["RetentionDays"],
                                 "response": domain.responses[-1] if domain.responses else None,
                                 "calls": domain.calls[first_call:]})
    server.shutdown()
    out["indices"] = domain.indices
    out["policies"] = domain.policies
    json.dump(out, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
