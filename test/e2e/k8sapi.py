#!/usr/bin/env python3
"""A fake Kubernetes API server for ocigate's tests (Python 3 standard library).

No real kube-apiserver can run on the test machines, so this module speaks
the JSON and HTTP that ocigate's Kubernetes mode talks to.  The shapes follow
the Kubernetes v1.30 API reference (authentication.k8s.io/v1 TokenReview,
authorization.k8s.io/v1 SubjectAccessReview, core/v1 Secret, meta/v1
ListMeta, Status and WatchEvent) and the observable behaviour of
kube-apiserver v1.30: its RBAC authorizer's reasons, its 401/403/404/409/410
Status bodies, the watch cache's "too old resource version: N (M)" errors,
bookmarks, continue tokens, and the JSON encoding itself (compact, one
trailing newline, <>& escaped as \\u003c \\u003e \\u0026, struct field order
for built-in types, sorted keys for custom resources, kind/apiVersion left
out of built-in list items).

    api = FakeKubeAPI(pki)                    # pki from ocitest.make_pki
    api.start()                               # https://127.0.0.1:PORT
    tok = api.add_service_account_token("team-a", "default")
    api.add_role("puller", [rule(["get"], ["connectors"], ["connectors.alauda.io"])],
                 namespace="team-a")
    api.add_binding("puller", "puller", [ServiceAccount("team-a", "default")],
                    namespace="team-a", role_kind="Role")
    api.add_connector("team-a", "harbor", "https://harbor.example.com",
                      secret="harbor-secret")
    api.add_secret("team-a", "harbor-secret", {"username": "u", "password": "p"},
                   type="cpaas.io/distribution-registry-token")
    api.write_kubeconfig(path)                # for ocigate's [kubernetes] section
    ...
    api.tokenreview_count(tok), api.sar_count(user, "harbor"), api.requests(...)
    api.stop()

Served (HTTPS on 127.0.0.1, HTTP/1.1 keep-alive, ALPN http/1.1 only):
  POST /apis/authentication.k8s.io/v1/tokenreviews
  POST /apis/authorization.k8s.io/v1/subjectaccessreviews
  GET|POST       /apis/connectors.alauda.io/v1alpha1[/namespaces/NS]/connectors
  GET|PUT|PATCH|DELETE  .../namespaces/NS/connectors/NAME[/status]
  the same for /api/v1[/namespaces/NS]/secrets (no status subresource)
  and /api/v1[/namespaces/NS]/serviceaccounts, and
  /apis/coordination.k8s.io/v1[/namespaces/NS]/leases (Lease: spec
        validated as the real server does, MicroTime with exactly six
        fraction digits, updates need metadata.resourceVersion), plus
  POST /api/v1/namespaces/NS/serviceaccounts/NAME/token (TokenRequest:
        mints a token TokenReview accepts; token_request_max_lifetime caps
        expirationSeconds, as a real server's --service-account-max-token-
        expiration does; deleting the ServiceAccount invalidates its tokens)
  list: limit/continue, labelSelector, fieldSelector (metadata.name,
        metadata.namespace; type for secrets), resourceVersion(+Match)
  watch=1: chunked newline-delimited events, resourceVersion,
        allowWatchBookmarks, timeoutSeconds, sendInitialEvents
  GET /healthz /livez /readyz /version (no authentication)

Every other request first authenticates (Bearer token from the token table,
which ocigate's own token is part of, or a client certificate signed by the
test CA: CN = user, O = groups) and is then authorized against the same RBAC
table that SubjectAccessReviews use.

Deliberate differences from a real cluster, all switchable or harmless:
  - gzip: the real server compresses only non-watch responses of 128 KiB or
    more; here gzip_min_bytes defaults to 0 and watch streams are compressed
    too (gzip_watch) whenever the client sends Accept-Encoding: gzip.
  - TokenReview failures omit "authenticated" (false is omitempty in the Go
    type), as the real server does; explicit_unauthenticated=True writes
    "authenticated":false instead.
  - fail_next() injections happen before authentication (token= limits one
    to the requests carrying that bearer token).
  - Not served: server-side apply, strategic merge patch for connectors
    (415, as for any custom resource), deletecollection, the deprecated
    /watch/ paths, discovery documents.

Run standalone:

    python3 test/e2e/k8sapi.py --port 0 --state FILE.json [--pki DIR]
        [--kubeconfig OUT] [--manifest FILE.yaml ...]

prints the URL on stdout, then serves until SIGTERM or SIGINT.  FILE.json:

    {"ocigate_token": "...",                      optional, else generated
     "tokens": [{"token": "...", "user": "...", "uid": "...", "groups": [],
                 "extra": {}, "audiences": [], "expires_in": 3600}],
     "service_accounts": [{"namespace": "team-a", "name": "default",
                           "token": "..."}],      token optional
     "objects": [Connector, Secret, Role, ClusterRole, RoleBinding or
                 ClusterRoleBinding manifests as JSON],
     "settings": {"bookmark_interval": 60, "expired_watch": "event"}}
"""

import argparse
import base64
import calendar
import copy
import gzip
import http.server
import json
import os
import re
import secrets
import select
import signal
import socket
import socketserver
import ssl
import struct
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ocitest  # noqa: E402

K8S_VERSION = "v1.30.0"
API_AUDIENCE = "https://kubernetes.default.svc.cluster.local"
ISSUER = API_AUDIENCE
OCIGATE_NAMESPACE = "ocigate"
OCIGATE_SA = "ocigate"
OCIGATE_USER = "system:serviceaccount:%s:%s" % (OCIGATE_NAMESPACE, OCIGATE_SA)
RBAC_GROUP = "rbac.authorization.k8s.io"
INITIAL_EVENTS_END = "k8s.io/initial-events-end"
MAX_BODY = 3 * 1024 * 1024

ERR_UNKNOWN_TOKEN = ("[invalid bearer token, square/go-jose: error in "
                     "cryptographic primitive]")
ERR_EXPIRED_TOKEN = "[invalid bearer token, service account token has expired]"
ERR_INVALIDATED_TOKEN = ("[invalid bearer token, service account token has "
                         "been invalidated]")

CONTINUE_TOO_OLD = (
    "The provided continue parameter is too old to display a consistent list "
    "result. You can start a new list without the continue parameter, or use "
    "the continue token in this response to retrieve the remainder of the "
    "results. Continuing with the provided token results in an inconsistent "
    "list - objects that were created, modified, or deleted between the time "
    "the first chunk was returned and now may show up in the list.")

PATCH_TYPES_CR = ("application/json-patch+json, application/merge-patch+json, "
                  "application/apply-patch+yaml")
PATCH_TYPES_BUILTIN = ("application/json-patch+json, "
                       "application/merge-patch+json, "
                       "application/strategic-merge-patch+json, "
                       "application/apply-patch+yaml")

# Fixed, like the priority-and-fairness UIDs of a cluster's default flows.
PF_FLOWSCHEMA_UID = "2bd6f6a5-0b6f-4d4e-9a53-4a8b0e0f4c11"
PF_PRIORITY_UID = "6c2a7d3e-9b8f-4e2d-8a4c-1f0e3d2b5a77"


class ApiError(Exception):
    """A request answered with a Status body."""

    def __init__(self, status, headers=()):
        Exception.__init__(self, status["message"])
        self.status = status
        self.headers = list(headers)


# --------------------------------------------------------------------------
# Encoding as kube-apiserver does


def go_json(obj):
    """Compact JSON with Go's HTML escaping and the encoder's newline."""
    s = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    s = (s.replace("<", "\\u003c").replace(">", "\\u003e")
         .replace("&", "\\u0026").replace("\u2028", "\\u2028")
         .replace("\u2029", "\\u2029"))
    return (s + "\n").encode("utf-8")


def go_quote(s):
    """Go's %q for the plain strings that appear in names and messages."""
    return json.dumps(s, ensure_ascii=False)


def go_quote_list(items):
    """Go's %q of a []string: ["a" "b"]."""
    return "[" + " ".join(go_quote(x) for x in items) + "]"


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def sorted_json(obj):
    """Keys sorted at every level: how unstructured objects are encoded."""
    if isinstance(obj, dict):
        return {k: sorted_json(obj[k]) for k in sorted(obj)}
    if isinstance(obj, list):
        return [sorted_json(v) for v in obj]
    return obj


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def status_body(code, reason, message, details=None, status="Failure",
                list_meta=None):
    s = {"kind": "Status", "apiVersion": "v1", "metadata": list_meta or {},
         "status": status}
    if message:
        s["message"] = message
    if reason:
        s["reason"] = reason
    if details is not None:
        s["details"] = details
    s["code"] = code
    return s


def _details(name=None, group=None, kind=None, causes=None, retry=None):
    d = {}
    if name:
        d["name"] = name
    if group:
        d["group"] = group
    if kind:
        d["kind"] = kind
    if causes:
        d["causes"] = causes
    if retry is not None:
        d["retryAfterSeconds"] = retry
    return d


def err_bad_request(msg):
    return ApiError(status_body(400, "BadRequest", msg))


def err_not_found_path():
    return ApiError(status_body(404, "NotFound",
                                "the server could not find the requested "
                                "resource", _details()))


def err_method_not_allowed():
    return ApiError(status_body(405, "MethodNotAllowed",
                                "the server does not allow this method on "
                                "the requested resource", _details()))


def err_invalid(kind, group, name, field, detail):
    gk = kind + "." + group if group else kind
    msg = "%s %s is invalid: %s: %s" % (gk, go_quote(name), field, detail)
    return ApiError(status_body(422, "Invalid", msg, _details(
        name=name, group=group, kind=kind,
        causes=[{"reason": "FieldValueInvalid", "message": detail,
                 "field": field}])))


# --------------------------------------------------------------------------
# Resources served from the object store


class Resource:
    def __init__(self, plural, group, version, kind, crd, status_sub,
                 extra_fields=()):
        self.plural = plural
        self.group = group
        self.version = version
        self.kind = kind
        self.crd = crd                  # encoded as unstructured (sorted keys)
        self.status_sub = status_sub    # has a /status subresource
        self.fields = ("metadata.name", "metadata.namespace") + tuple(extra_fields)

    @property
    def api_version(self):
        return "%s/%s" % (self.group, self.version) if self.group else self.version

    @property
    def qualified(self):
        return "%s.%s" % (self.plural, self.group) if self.group else self.plural

    def not_found(self, name):
        return ApiError(status_body(
            404, "NotFound", "%s %s not found" % (self.qualified, go_quote(name)),
            _details(name=name, group=self.group, kind=self.plural)))

    def conflict(self, name):
        return ApiError(status_body(
            409, "Conflict",
            "Operation cannot be fulfilled on %s %s: the object has been "
            "modified; please apply your changes to the latest version and "
            "try again" % (self.qualified, go_quote(name)),
            _details(name=name, group=self.group, kind=self.plural)))

    def already_exists(self, name):
        return ApiError(status_body(
            409, "AlreadyExists",
            "%s %s already exists" % (self.qualified, go_quote(name)),
            _details(name=name, group=self.group, kind=self.plural)))


CONNECTORS = Resource("connectors", "connectors.alauda.io", "v1alpha1",
                      "Connector", crd=True, status_sub=True)
SECRETS = Resource("secrets", "", "v1", "Secret", crd=False, status_sub=False,
                   extra_fields=("type",))
SERVICEACCOUNTS = Resource("serviceaccounts", "", "v1", "ServiceAccount",
                           crd=False, status_sub=False)
LEASES = Resource("leases", "coordination.k8s.io", "v1", "Lease", crd=False,
                  status_sub=False)
RESOURCES = {CONNECTORS.plural: CONNECTORS, SECRETS.plural: SECRETS,
             SERVICEACCOUNTS.plural: SERVICEACCOUNTS, LEASES.plural: LEASES}
# coordination/v1 LeaseSpec, in its Go field order
LEASE_SPEC_FIELDS = ("holderIdentity", "leaseDurationSeconds", "acquireTime",
                     "renewTime", "leaseTransitions", "strategy",
                     "preferredHolder")
_MICROTIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}"
                        r"(Z|[+-]\d\d:\d\d)$")


def parse_microtime(s):
    """metav1.MicroTime as the API server decodes it (time.Parse with
    RFC3339Micro: exactly six fraction digits): seconds since the epoch."""
    if not isinstance(s, str) or not _MICROTIME.match(s):
        raise ValueError("not a MicroTime: %r" % (s,))
    base, frac = s[:19], s[20:26]
    tz = s[26:]
    t = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
    if tz != "Z":
        off = int(tz[1:3]) * 3600 + int(tz[4:6]) * 60
        t -= off if tz[0] == "+" else -off
    return t + int(frac) / 1e6


def microtime(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + (
        ".%06dZ" % (int(round(t * 1e6)) % 1000000))


def lease_spec(res_name, spec):
    """The spec of a Lease body as the API server stores it; ApiError 400
    (decoding) or 422 (validation) as kube-apiserver answers."""
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        raise err_bad_request("Lease in version \"v1\" cannot be handled as "
                              "a Lease: spec must be an object")
    out = {}
    for k in LEASE_SPEC_FIELDS:
        v = spec.get(k)
        if v is None:
            continue
        if k in ("acquireTime", "renewTime"):
            try:
                parse_microtime(v)
            except ValueError:
                raise err_bad_request(
                    "Lease in version \"v1\" cannot be handled as a Lease: "
                    "parsing time %s as \"2006-01-02T15:04:05.000000Z07:00\": "
                    "cannot parse" % go_quote(str(v)))
        elif k in ("leaseDurationSeconds", "leaseTransitions"):
            if not isinstance(v, int) or isinstance(v, bool):
                raise err_bad_request("Lease in version \"v1\" cannot be "
                                      "handled as a Lease: spec.%s: expects "
                                      "a number" % k)
            if k == "leaseDurationSeconds" and v <= 0:
                raise err_invalid("Lease", "coordination.k8s.io", res_name,
                                  "spec.leaseDurationSeconds",
                                  "Invalid value: %d: must be greater than 0"
                                  % v)
            if k == "leaseTransitions" and v < 0:
                raise err_invalid("Lease", "coordination.k8s.io", res_name,
                                  "spec.leaseTransitions",
                                  "Invalid value: %d: must be greater than or "
                                  "equal to 0" % v)
        elif not isinstance(v, str):
            raise err_bad_request("Lease in version \"v1\" cannot be handled "
                                  "as a Lease: spec.%s: expects a string" % k)
        out[k] = v
    return out
KIND_TO_RESOURCE = {r.kind: r for r in RESOURCES.values()}

_META_ORDER = ("name", "generateName", "namespace", "selfLink", "uid",
               "resourceVersion", "generation", "creationTimestamp",
               "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
               "annotations", "ownerReferences", "finalizers", "managedFields")


def _ordered_meta(meta):
    out = {}
    for k in _META_ORDER:
        if k in meta and meta[k] not in (None, {}, []):
            v = meta[k]
            out[k] = sorted_json(v) if isinstance(v, dict) else v
    return out


def encode_object(res, obj, in_list=False):
    """The object as the API server writes it."""
    if res.crd:
        return sorted_json(obj)
    out = {}
    if not in_list:
        out["kind"] = res.kind
        out["apiVersion"] = res.api_version
    out["metadata"] = _ordered_meta(obj.get("metadata", {}))
    if res is SERVICEACCOUNTS:
        return out
    if res is LEASES:
        sp = obj.get("spec") or {}
        out["spec"] = {k: sp[k] for k in LEASE_SPEC_FIELDS if k in sp}
        return out
    if obj.get("immutable") is not None:
        out["immutable"] = obj["immutable"]
    if obj.get("data"):
        out["data"] = sorted_json(obj["data"])
    out["type"] = obj.get("type", "Opaque")
    return out


def bookmark_object(res, rv, initial_end=False):
    meta = {"resourceVersion": str(rv)}
    if res.crd:
        if initial_end:
            meta["annotations"] = {INITIAL_EVENTS_END: "true"}
        return sorted_json({"apiVersion": res.api_version, "kind": res.kind,
                            "metadata": meta})
    meta["creationTimestamp"] = None
    if initial_end:
        meta["annotations"] = {INITIAL_EVENTS_END: "true"}
    return {"kind": res.kind, "apiVersion": res.api_version, "metadata": meta}


def obj_key(obj):
    m = obj["metadata"]
    return "%s/%s" % (m.get("namespace", ""), m["name"])


# --------------------------------------------------------------------------
# Selectors


_LABEL_KEY = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*/)?"
                        r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def _split_top(s, sep=","):
    """Split on sep outside parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


def parse_label_selector(s):
    """List of (op, key, values); raises ApiError 400 on bad syntax."""
    reqs = []
    if not s.strip():
        return reqs
    for part in _split_top(s):
        part = part.strip()
        m = re.fullmatch(r"(\S+)\s+(in|notin)\s+\((.*)\)", part)
        if m:
            key, op = m.group(1), m.group(2)
            values = [v.strip() for v in m.group(3).split(",")]
        elif part.startswith("!"):
            key, op, values = part[1:].strip(), "!", []
        elif "!=" in part:
            key, _, v = part.partition("!=")
            op, values = "!=", [v.strip()]
        elif "==" in part:
            key, _, v = part.partition("==")
            op, values = "=", [v.strip()]
        elif "=" in part:
            key, _, v = part.partition("=")
            op, values = "=", [v.strip()]
        else:
            key, op, values = part, "exists", []
        key = key.strip()
        if not _LABEL_KEY.match(key) or not all(_LABEL_VALUE.match(v)
                                                for v in values):
            raise err_bad_request("unable to parse requirement: %s"
                                  % go_quote(part))
        reqs.append((op, key, set(values)))
    return reqs


def labels_match(reqs, labels):
    labels = labels or {}
    for op, key, values in reqs:
        has = key in labels
        if op == "exists" and not has:
            return False
        if op == "!" and has:
            return False
        if op in ("=", "in") and (not has or labels[key] not in values):
            return False
        if op in ("!=", "notin") and has and labels[key] in values:
            return False
    return True


def parse_field_selector(s, res):
    reqs = []
    if not s.strip():
        return reqs
    for part in s.split(","):
        m = re.fullmatch(r"\s*([^!=\s]+)\s*(==|!=|=)\s*(\S*)\s*", part)
        if not m:
            raise err_bad_request("invalid selector: %s; can't understand %s"
                                  % (go_quote(s), go_quote(part)))
        field, op, value = m.groups()
        if field not in res.fields:
            raise err_bad_request("field label not supported: %s" % field)
        reqs.append((field, op != "!=", value))
    return reqs


def _field_value(obj, field):
    if field == "type":
        return obj.get("type", "Opaque")
    return obj["metadata"].get(field.split(".", 1)[1], "")


def fields_match(reqs, obj):
    return all((_field_value(obj, f) == v) == eq for f, eq, v in reqs)


# --------------------------------------------------------------------------
# Patches


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


class PatchError(Exception):
    pass


def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError("invalid JSON pointer %s" % go_quote(path))
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc, parts):
    for p in parts:
        if isinstance(doc, dict) and p in doc:
            doc = doc[p]
        elif isinstance(doc, list) and p.isdigit() and int(p) < len(doc):
            doc = doc[int(p)]
        else:
            raise PatchError("path not found: %s" % p)
    return doc


def _add(doc, parts, value):
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise PatchError("index out of range: %s" % last)
    else:
        raise PatchError("cannot add to a scalar")


def _remove(doc, parts):
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent.pop(int(last))
    raise PatchError("path not found: %s" % last)


def json_patch(doc, ops):
    """RFC 6902 JSON patch: add, remove, replace, move, copy, test."""
    doc = copy.deepcopy(doc)
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be an array of operations")
    for op in ops:
        if not isinstance(op, dict) or "path" not in op:
            raise PatchError("operation without a path")
        kind, parts = op.get("op"), _pointer(op["path"])
        if not parts and kind != "test":
            raise PatchError("cannot %s the whole document" % kind)
        if kind == "add":
            _add(doc, parts, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            _remove(doc, parts)
        elif kind == "replace":
            _remove(doc, parts)
            _add(doc, parts, copy.deepcopy(op.get("value")))
        elif kind in ("move", "copy"):
            src = _pointer(op.get("from", ""))
            v = _remove(doc, src) if kind == "move" else copy.deepcopy(
                _walk(doc, src))
            _add(doc, parts, v)
        elif kind == "test":
            if _walk(doc, parts) != op.get("value"):
                raise PatchError("testing value %s failed" % op["path"])
        else:
            raise PatchError("unexpected kind: %s" % go_quote(str(kind)))
    return doc


# --------------------------------------------------------------------------
# RBAC (the rules of the real RBAC authorizer, without aggregation)


def rule(verbs, resources, api_groups=("",), resource_names=()):
    """A PolicyRule.  resources may name subresources as "res/sub"."""
    r = {"apiGroups": list(api_groups), "resources": list(resources),
         "verbs": list(verbs)}
    if resource_names:
        r["resourceNames"] = list(resource_names)
    return r


def nonresource_rule(verbs, urls):
    return {"nonResourceURLs": list(urls), "verbs": list(verbs)}


def User(name):  # noqa: N802 (reads like the RBAC kind)
    return {"kind": "User", "apiGroup": RBAC_GROUP, "name": name}


def Group(name):  # noqa: N802
    return {"kind": "Group", "apiGroup": RBAC_GROUP, "name": name}


def ServiceAccount(namespace, name):  # noqa: N802
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def ocigate_rbac():
    """The ClusterRole and ClusterRoleBinding of packaging/kubernetes/rbac.yaml
    (test_k8sapi_fixture.py checks the two agree)."""
    role = {"apiVersion": RBAC_GROUP + "/v1", "kind": "ClusterRole",
            "metadata": {"name": "ocigate"},
            "rules": [
                rule(["create"], ["tokenreviews"], ["authentication.k8s.io"]),
                rule(["create"], ["subjectaccessreviews"],
                     ["authorization.k8s.io"]),
                rule(["get", "list", "watch"], ["connectors"],
                     ["connectors.alauda.io"]),
                rule(["get", "patch"], ["connectors/status"],
                     ["connectors.alauda.io"]),
                rule(["get", "list", "watch"], ["secrets"], [""]),
            ]}
    binding = {"apiVersion": RBAC_GROUP + "/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "ocigate"},
               "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole",
                           "name": "ocigate"},
               "subjects": [ServiceAccount(OCIGATE_NAMESPACE, OCIGATE_SA)]}
    return [role, binding]


def ocigate_lease_rbac(namespace=OCIGATE_NAMESPACE):
    """The Role and RoleBinding of packaging/kubernetes/rbac.yaml for leader
    election: the Lease in ocigate's own namespace."""
    role = {"apiVersion": RBAC_GROUP + "/v1", "kind": "Role",
            "metadata": {"name": "ocigate-leader-election",
                         "namespace": namespace},
            "rules": [rule(["get", "create", "update"], ["leases"],
                           ["coordination.k8s.io"])]}
    binding = {"apiVersion": RBAC_GROUP + "/v1", "kind": "RoleBinding",
               "metadata": {"name": "ocigate-leader-election",
                            "namespace": namespace},
               "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role",
                           "name": "ocigate-leader-election"},
               "subjects": [ServiceAccount(OCIGATE_NAMESPACE, OCIGATE_SA)]}
    return [role, binding]


def _has(lst, v):
    return v in lst or "*" in lst


def rule_allows(r, attrs):
    verbs = r.get("verbs") or []
    if not _has(verbs, attrs["verb"]):
        return False
    if attrs.get("path") is not None:
        for u in r.get("nonResourceURLs") or []:
            if u == "*" or u == attrs["path"] or (
                    u.endswith("*") and attrs["path"].startswith(u[:-1])):
                return True
        return False
    if not _has(r.get("apiGroups") or [], attrs.get("group", "")):
        return False
    resource, sub = attrs.get("resource", ""), attrs.get("subresource", "")
    combined = resource + "/" + sub if sub else resource
    ok = False
    for rr in r.get("resources") or []:
        if rr == "*" or rr == combined or (sub and rr == "*/" + sub):
            ok = True
            break
    if not ok:
        return False
    names = r.get("resourceNames") or []
    return not names or attrs.get("name", "") in names


def subject_matches(s, user, groups, binding_ns):
    kind = s.get("kind")
    if kind == "User":
        return s.get("name") == user
    if kind == "Group":
        return s.get("name") in groups
    if kind == "ServiceAccount":
        ns = s.get("namespace") or binding_ns
        return bool(ns) and user == "system:serviceaccount:%s:%s" % (
            ns, s.get("name"))
    return False


def describe_subject(s, binding_ns):
    if s["kind"] == "ServiceAccount":
        return "ServiceAccount %s" % go_quote(
            "%s/%s" % (s["name"], s.get("namespace") or binding_ns))
    return "%s %s" % (s["kind"], go_quote(s["name"]))


class Rbac:
    """Roles, ClusterRoles, RoleBindings, ClusterRoleBindings, as dicts in
    their manifest form, keyed by (kind, namespace, name)."""

    KINDS = ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")

    def __init__(self):
        self.objects = {}

    def apply(self, obj):
        kind = obj.get("kind")
        if kind not in self.KINDS:
            raise ValueError("not an RBAC object: %r" % kind)
        meta = obj.get("metadata") or {}
        ns = meta.get("namespace", "") if kind.startswith("Role") else ""
        if kind.startswith("Role") and not ns:
            raise ValueError("%s %s needs metadata.namespace"
                             % (kind, meta.get("name")))
        self.objects[(kind, ns, meta["name"])] = copy.deepcopy(obj)

    def remove(self, kind, name, namespace=""):
        return self.objects.pop((kind, namespace or "", name), None) is not None

    def _role(self, ref, ns):
        kind = ref.get("kind")
        return self.objects.get((kind, ns if kind == "Role" else "",
                                 ref.get("name")))

    def authorize(self, user, groups, attrs):
        """(allowed, reason) like the RBAC authorizer: ClusterRoleBindings
        first, then RoleBindings of the request's namespace."""
        ns = attrs.get("namespace", "")
        scopes = [("ClusterRoleBinding", "")]
        if ns and attrs.get("path") is None:
            scopes.append(("RoleBinding", ns))
        for bkind, bns in scopes:
            for key in sorted(k for k in self.objects
                              if k[0] == bkind and k[1] == bns):
                b = self.objects[key]
                subj = next((s for s in b.get("subjects") or []
                             if subject_matches(s, user, groups, bns)), None)
                if subj is None:
                    continue
                role = self._role(b.get("roleRef") or {}, bns)
                if role is None:
                    continue
                if any(rule_allows(r, attrs) for r in role.get("rules") or []):
                    ref = b["roleRef"]
                    bname = b["metadata"]["name"]
                    if bkind == "RoleBinding":
                        bname += "/" + bns
                    return True, "RBAC: allowed by %s %s of %s %s to %s" % (
                        bkind, go_quote(bname), ref["kind"],
                        go_quote(ref["name"]), describe_subject(subj, bns))
        return False, ""


def forbidden(user, attrs):
    """The 403 Status kube-apiserver writes for a denied request."""
    verb = attrs["verb"]
    if attrs.get("path") is not None:
        msg = "forbidden: User %s cannot %s path %s" % (
            go_quote(user), verb, go_quote(attrs["path"]))
        return status_body(403, "Forbidden", msg, _details())
    resource = attrs["resource"]
    if attrs.get("subresource"):
        resource += "/" + attrs["subresource"]
    ns = attrs.get("namespace", "")
    where = ("in the namespace %s" % go_quote(ns)) if ns else "at the cluster scope"
    why = "User %s cannot %s resource %s in API group %s %s" % (
        go_quote(user), verb, go_quote(resource),
        go_quote(attrs.get("group", "")), where)
    group = attrs.get("group", "")
    qualified = attrs["resource"] + ("." + group if group else "")
    name = attrs.get("name", "")
    if name:
        msg = "%s %s is forbidden: %s" % (qualified, go_quote(name), why)
    else:
        msg = "%s is forbidden: %s" % (qualified, why)
    return status_body(403, "Forbidden", msg,
                       _details(name=name, group=group, kind=attrs["resource"]))


# --------------------------------------------------------------------------
# Tokens


class TokenInfo:
    def __init__(self, token, user, uid="", groups=(), extra=None,
                 audiences=None, expires_at=None):
        self.token = token
        self.user = user
        self.uid = uid
        self.groups = list(groups)
        self.extra = {k: list(v) for k, v in (extra or {}).items()}
        self.audiences = list(audiences) if audiences else [API_AUDIENCE]
        self.expires_at = expires_at   # epoch seconds or None
        self.invalidated = False


def mint_jwt(claims):
    """A token shaped like a projected ServiceAccount token.  The signature
    is random: only this fixture can validate it, by lookup."""
    header = {"alg": "RS256", "kid": "ocigate-fake-kube-api"}
    return "%s.%s.%s" % (
        b64url(json.dumps(header, separators=(",", ":")).encode()),
        b64url(json.dumps(claims, separators=(",", ":")).encode()),
        b64url(secrets.token_bytes(64)))


# --------------------------------------------------------------------------
# The object store's event log


class _Event:
    __slots__ = ("rv", "res", "type", "obj", "prev")

    def __init__(self, rv, res, type_, obj, prev):
        self.rv = rv
        self.res = res
        self.type = type_
        self.obj = obj
        self.prev = prev


class _Watch:
    def __init__(self, res):
        self.res = res
        self.dropped = False


class Injection:
    """One fail_next() rule; .hits counts the requests it answered."""

    def __init__(self, pattern, action, times, method, retry_after,
                 token=None):
        self.pattern = re.compile(pattern)
        self.token = token
        self.action = action
        self.remaining = times
        self.method = method
        self.retry_after = retry_after
        self.hits = 0


_INJECTED_REASON = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden",
    404: "NotFound", 409: "Conflict", 410: "Expired",
    429: "TooManyRequests", 500: "InternalError",
    503: "ServiceUnavailable", 504: "Timeout",
}


class _HTTPServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr, api):
        self.api = api
        http.server.HTTPServer.__init__(self, addr, _Handler)

    def server_bind(self):
        # HTTPServer's would resolve the host name (getfqdn): not needed
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        self.api._note_error(sys.exc_info()[1])


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        api = self.server.api
        self.aborted = False
        raw = self.request
        raw.settimeout(api.handshake_timeout)
        self.request = api._ssl_ctx.wrap_socket(raw, server_side=True)
        self.request.settimeout(api.idle_timeout)
        api._track(self.request)
        http.server.BaseHTTPRequestHandler.setup(self)

    def finish(self):
        api = self.server.api
        try:
            http.server.BaseHTTPRequestHandler.finish(self)
        except OSError:
            pass
        finally:
            if not (self.aborted or getattr(self.request, "ocigate_aborted",
                                            False)):
                # close_notify, as Go's tls.Conn.Close sends; never wait
                # for the peer's
                try:
                    self.request.setblocking(False)
                    self.request.unwrap()
                except (OSError, ValueError):
                    pass
            try:
                self.request.close()
            except OSError:
                pass
            api._untrack(self.request)

    def log_message(self, *args):
        pass

    def _serve(self):
        self.server.api._dispatch(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve
    do_OPTIONS = _serve


_ABORT_LINGER = struct.pack("ii", 1, 0)


def abort_socket(sock):
    """Cut the TCP connection under TLS: no close_notify, no FIN, a RST.

    SO_LINGER {on, 0 s} makes the close() in _Handler.finish() send a TCP
    RST instead of a FIN, whatever is still queued: the peer's next read
    fails with ECONNRESET on every kernel and with every TLS library.  A
    FIN (shutdown(SHUT_RDWR), the old way) is only an "unexpected EOF",
    which some OpenSSL/Python builds report as a clean close.
    shutdown(SHUT_RD) sends nothing but wakes a handler thread blocked in
    recv() (stop() calls this from another thread); the socket is marked so
    that finish() neither sends close_notify nor lets the server send a FIN.
    """
    sock.ocigate_aborted = True
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _ABORT_LINGER)
        socket.socket.shutdown(sock, socket.SHUT_RD)
    except OSError:
        pass


def make_client_cert(pki, name, cn, orgs=()):
    """A client certificate signed by the test CA: CN is the Kubernetes
    user, each O a group.  Returns (cert_path, key_path)."""
    key = os.path.join(pki.dir, name + ".key")
    cert = os.path.join(pki.dir, name + ".pem")
    csr = os.path.join(pki.dir, name + ".csr")
    ext = os.path.join(pki.dir, name + ".ext")
    with open(ext, "w") as f:
        f.write("basicConstraints = critical, CA:FALSE\n"
                "keyUsage = critical, digitalSignature\n"
                "extendedKeyUsage = clientAuth\n")
    subj = "".join("/O=%s" % o for o in orgs) + "/CN=%s" % cn
    ocitest.run_tool(["openssl", "req", "-new", "-newkey", "ec",
                      "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                      "-keyout", key, "-out", csr, "-subj", subj])
    ocitest.run_tool(["openssl", "x509", "-req", "-in", csr, "-CA", pki.ca_pem,
                      "-CAkey", pki.ca_key, "-CAcreateserial", "-days", "3",
                      "-extfile", ext, "-out", cert])
    return cert, key


# --------------------------------------------------------------------------
# The server


class FakeKubeAPI:
    """See the module docstring.  Every public method is thread-safe."""

    def __init__(self, pki, port=0, ocigate_token=None, client_certs=True,
                 enforce_rbac=True, ocigate_rbac_defaults=True,
                 bookmark_interval=60.0, expired_watch="event",
                 api_audiences=(API_AUDIENCE,), gzip_min_bytes=0,
                 gzip_watch=True, watch_chunk_size=None,
                 default_watch_timeout=1800, idle_timeout=90.0,
                 explicit_unauthenticated=False, initial_rv=100,
                 clock=time.time):
        self.pki = pki
        self.port = port
        self.host = "127.0.0.1"
        self.clock = clock
        self.enforce_rbac = enforce_rbac
        self.bookmark_interval = bookmark_interval
        self.expired_watch = expired_watch       # "event" or "http"
        self.api_audiences = list(api_audiences)
        self.gzip_min_bytes = gzip_min_bytes
        self.gzip_watch = gzip_watch
        self.watch_chunk_size = watch_chunk_size
        self.default_watch_timeout = default_watch_timeout
        self.idle_timeout = idle_timeout
        self.handshake_timeout = 10.0
        self.explicit_unauthenticated = explicit_unauthenticated
        self.hang_seconds = 120.0
        self._cond = threading.Condition(threading.RLock())
        self._ssl_ctx = self._make_ssl_context(client_certs)
        self._server = None
        self._thread = None
        self._conns = set()
        self._watches = set()
        self._hang_release = threading.Event()
        self._injections = []
        self.errors = []                   # exceptions in handler threads
        # authentication and authorization
        self._tokens = {}
        self.rbac = Rbac()
        self.ocigate_token = ocigate_token or self.mint_service_account_token(
            OCIGATE_NAMESPACE, OCIGATE_SA, expires_in=None)
        if ocigate_token:
            self.add_token(ocigate_token, OCIGATE_USER,
                           groups=self._sa_groups(OCIGATE_NAMESPACE))
        if ocigate_rbac_defaults:
            for obj in ocigate_rbac() + ocigate_lease_rbac():
                self.rbac.apply(obj)
        # objects
        self._rv = initial_rv
        self._objects = {r: {} for r in RESOURCES}
        self._events = []                  # every change, never forgotten
        self._compacted_rv = initial_rv
        # observations
        self._log = []
        self._tokenreviews = []            # (token, authenticated)
        self._sars = []                    # (user, groups, attrs, allowed)
        self._token_requests = []          # (ns, name, asked, granted, auds)
        self._sa_tokens = {}               # "ns/name" -> [token] (TokenRequest)
        # None: grant expirationSeconds as asked; else at most this many s
        self.token_request_max_lifetime = None

    # ---- lifecycle

    def _make_ssl_context(self, client_certs):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.pki.cert, self.pki.key)
        ctx.set_alpn_protocols(["http/1.1"])
        if client_certs:
            ctx.verify_mode = ssl.CERT_OPTIONAL
            ctx.load_verify_locations(self.pki.ca_pem)
        return ctx

    @property
    def url(self):
        return "https://%s:%d" % (self.host, self.port)

    @property
    def ca_file(self):
        return self.pki.ca_pem

    def start(self):
        """Listen (again) on the same port; returns self."""
        with self._cond:
            if self._server is not None:
                return self
            self._hang_release = threading.Event()
        server = None
        for attempt in range(50):
            try:
                server = _HTTPServer((self.host, self.port), self)
                break
            except OSError:
                if self.port == 0 or attempt == 49:
                    raise
                time.sleep(0.1)
        self.port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever,
                                  kwargs={"poll_interval": 0.05},
                                  name="fake-kube-api", daemon=True)
        with self._cond:
            self._server, self._thread = server, thread
        thread.start()
        return self

    def stop(self):
        """The API server goes down: the port stops listening, every open
        connection (watches, keep-alive, hung requests) is cut."""
        with self._cond:
            server, self._server = self._server, None
            for w in self._watches:
                w.dropped = True
            conns = list(self._conns)
            self._hang_release.set()
            self._cond.notify_all()
        if server is None:
            return
        server.shutdown()
        server.server_close()
        for c in conns:
            abort_socket(c)
        # Until its handler thread has closed it, a cut socket still queues
        # what the peer sends, and a thread that wakes up late would serve
        # it: stop() returns once every connection is really gone.
        with self._cond:
            self._cond.wait_for(lambda: not self._conns, timeout=10)

    def restart(self, down_seconds=0.0):
        self.stop()
        if down_seconds:
            time.sleep(down_seconds)
        return self.start()

    @property
    def running(self):
        with self._cond:
            return self._server is not None

    def _track(self, sock):
        with self._cond:
            self._conns.add(sock)

    def _untrack(self, sock):
        with self._cond:
            self._conns.discard(sock)
            self._cond.notify_all()

    def _note_error(self, exc):
        # client disconnects and TLS failures are normal in tests
        if isinstance(exc, (OSError, ssl.SSLError, ValueError)):
            return
        with self._cond:
            self.errors.append(exc)

    def kubeconfig(self, user_token=None, namespace=OCIGATE_NAMESPACE,
                   client_cert=None):
        """A kubeconfig (YAML text) for ocigate: this server, the test CA,
        ocigate's token (or a (cert, key) client certificate)."""
        if client_cert:
            user = ("    client-certificate: %s\n    client-key: %s\n"
                    % client_cert)
        else:
            user = "    token: %s\n" % (user_token or self.ocigate_token)
        return ("apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n"
                "  cluster:\n    server: %s\n    certificate-authority: %s\n"
                "users:\n- name: ocigate\n  user:\n%s"
                "contexts:\n- name: fake\n  context:\n    cluster: fake\n"
                "    user: ocigate\n    namespace: %s\n"
                "current-context: fake\n"
                % (self.url, self.pki.ca_pem, user, namespace))

    def write_kubeconfig(self, path, **kw):
        with open(path, "w") as f:
            f.write(self.kubeconfig(**kw))
        os.chmod(path, 0o600)
        return path

    # ---- tokens

    @staticmethod
    def _sa_groups(ns):
        return ["system:serviceaccounts", "system:serviceaccounts:" + ns,
                "system:authenticated"]

    def add_token(self, token, user, uid="", groups=(), extra=None,
                  audiences=None, expires_at=None, expires_in=None):
        """Add or replace a token the API server knows.  audiences default to
        the API server's own; expires_in is seconds from now."""
        if expires_in is not None:
            expires_at = self.clock() + expires_in
        with self._cond:
            self._tokens[token] = TokenInfo(token, user, uid, groups, extra,
                                            audiences, expires_at)
        return token

    def mint_service_account_token(self, namespace, name, audiences=None,
                                   expires_in=3600, pod=None, token=None):
        """A projected-token-shaped JWT for system:serviceaccount:NS:NAME with
        the user info a real cluster returns for it (groups, uid, extra with
        credential-id and, with pod=(name, uid), pod-name and pod-uid).
        expires_in=None: never expires (its exp claim is a year away)."""
        now = int(self.clock())
        auds = list(audiences) if audiences else [API_AUDIENCE]
        exp = now + (expires_in if expires_in is not None else 365 * 86400)
        sa_uid = str(uuid.uuid5(uuid.NAMESPACE_URL, "sa/%s/%s" % (namespace,
                                                                 name)))
        jti = str(uuid.uuid4())
        k8s = {"namespace": namespace,
               "serviceaccount": {"name": name, "uid": sa_uid}}
        extra = {"authentication.kubernetes.io/credential-id": ["JTI=" + jti]}
        if pod:
            k8s["pod"] = {"name": pod[0], "uid": pod[1]}
            extra["authentication.kubernetes.io/pod-name"] = [pod[0]]
            extra["authentication.kubernetes.io/pod-uid"] = [pod[1]]
        user = "system:serviceaccount:%s:%s" % (namespace, name)
        tok = token or mint_jwt({"aud": auds, "exp": exp, "iat": now,
                                 "iss": ISSUER, "jti": jti,
                                 "kubernetes.io": k8s, "nbf": now,
                                 "sub": user})
        self.add_token(tok, user, uid=sa_uid, groups=self._sa_groups(namespace),
                       extra=extra, audiences=auds,
                       expires_at=exp if expires_in is not None else None)
        return tok

    def add_service_account_token(self, namespace, name, **kw):
        return self.mint_service_account_token(namespace, name, **kw)

    def expire_token(self, token):
        with self._cond:
            self._tokens[token].expires_at = self.clock() - 1

    def invalidate_token(self, token):
        """As when its ServiceAccount or Pod is deleted."""
        with self._cond:
            self._tokens[token].invalidated = True

    def remove_token(self, token):
        with self._cond:
            self._tokens.pop(token, None)

    def _check_token(self, token, want_auds):
        """(TokenInfo, audiences, error)"""
        info = self._tokens.get(token)
        if info is None:
            return None, [], ERR_UNKNOWN_TOKEN
        if info.invalidated:
            return None, [], ERR_INVALIDATED_TOKEN
        if info.expires_at is not None and self.clock() >= info.expires_at:
            return None, [], ERR_EXPIRED_TOKEN
        auds = [a for a in info.audiences if a in want_auds]
        if not auds:
            return None, [], ("[invalid bearer token, token audiences %s is "
                              "invalid for the target audiences %s]"
                              % (go_quote_list(info.audiences),
                                 go_quote_list(want_auds)))
        return info, auds, None

    # ---- RBAC

    def add_role(self, name, rules, namespace=None):
        """A Role in namespace, or a ClusterRole when namespace is None."""
        kind = "Role" if namespace else "ClusterRole"
        meta = {"name": name}
        if namespace:
            meta["namespace"] = namespace
        with self._cond:
            self.rbac.apply({"apiVersion": RBAC_GROUP + "/v1", "kind": kind,
                             "metadata": meta, "rules": list(rules)})

    def add_binding(self, name, role, subjects, namespace=None,
                    role_kind=None):
        """A RoleBinding in namespace (to a Role, or a ClusterRole with
        role_kind="ClusterRole"), or a ClusterRoleBinding when namespace is
        None.  subjects: User(), Group(), ServiceAccount() dicts."""
        kind = "RoleBinding" if namespace else "ClusterRoleBinding"
        role_kind = role_kind or ("Role" if namespace else "ClusterRole")
        meta = {"name": name}
        if namespace:
            meta["namespace"] = namespace
        with self._cond:
            self.rbac.apply({"apiVersion": RBAC_GROUP + "/v1", "kind": kind,
                             "metadata": meta,
                             "roleRef": {"apiGroup": RBAC_GROUP,
                                         "kind": role_kind, "name": role},
                             "subjects": list(subjects)})

    def remove_rbac(self, kind, name, namespace=None):
        with self._cond:
            return self.rbac.remove(kind, name, namespace or "")

    def authorize(self, user, groups, attrs):
        with self._cond:
            return self.rbac.authorize(user, list(groups), attrs)

    # ---- objects

    def _commit(self, res, type_, obj, prev):
        """Record a change; obj is never mutated afterwards."""
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        key = obj_key(obj)
        if type_ == "DELETED":
            self._objects[res.plural].pop(key, None)
        else:
            self._objects[res.plural][key] = obj
        self._events.append(_Event(self._rv, res, type_, obj, prev))
        self._cond.notify_all()
        return copy.deepcopy(obj)

    def _new_meta(self, meta, namespace, name, generation):
        m = {k: copy.deepcopy(v) for k, v in (meta or {}).items()
             if k in ("labels", "annotations", "finalizers", "ownerReferences")
             and v}
        m.update({"name": name, "namespace": namespace,
                  "uid": str(uuid.uuid4()),
                  "creationTimestamp": rfc3339(self.clock())})
        if generation:
            m["generation"] = 1
        return m

    def _create(self, res, namespace, name, body):
        """Create from a manifest-like dict; ApiError if it exists."""
        with self._cond:
            key = "%s/%s" % (namespace, name)
            if key in self._objects[res.plural]:
                raise res.already_exists(name)
            obj = {"apiVersion": res.api_version, "kind": res.kind,
                   "metadata": self._new_meta(body.get("metadata"), namespace,
                                              name, res.crd)}
            if res.crd:
                if body.get("spec") is not None:
                    obj["spec"] = copy.deepcopy(body["spec"])
                if body.get("status") is not None:
                    obj["status"] = copy.deepcopy(body["status"])
            elif res is SECRETS:
                self._secret_body(obj, body)
            elif res is LEASES:
                obj["spec"] = lease_spec(name, body.get("spec"))
            return self._commit(res, "ADDED", obj, None)

    @staticmethod
    def _secret_body(obj, body):
        data = dict(body.get("data") or {})
        for k, v in (body.get("stringData") or {}).items():
            data[k] = base64.b64encode(v.encode()).decode()
        if data:
            obj["data"] = data
        obj["type"] = body.get("type") or "Opaque"
        if body.get("immutable") is not None:
            obj["immutable"] = body["immutable"]

    def _update(self, res, namespace, name, new, only_status=False,
                expect_rv=None):
        """Replace an object's mutable parts with new's.  Returns the stored
        copy (unchanged, without a new resourceVersion, for a no-op)."""
        with self._cond:
            cur = self._objects[res.plural].get("%s/%s" % (namespace, name))
            if cur is None:
                raise res.not_found(name)
            if expect_rv is not None and expect_rv != cur["metadata"][
                    "resourceVersion"]:
                raise res.conflict(name)
            obj = copy.deepcopy(cur)
            if only_status:
                if new.get("status") is None:
                    obj.pop("status", None)
                else:
                    obj["status"] = copy.deepcopy(new["status"])
            else:
                meta = new.get("metadata") or {}
                for k in ("labels", "annotations", "finalizers",
                          "ownerReferences"):
                    if meta.get(k):
                        obj["metadata"][k] = copy.deepcopy(meta[k])
                    else:
                        obj["metadata"].pop(k, None)
                if res.crd:
                    # with a status subresource the main endpoint ignores status
                    if new.get("spec") is None:
                        obj.pop("spec", None)
                    else:
                        obj["spec"] = copy.deepcopy(new["spec"])
                    if obj.get("spec") != cur.get("spec"):
                        obj["metadata"]["generation"] = cur["metadata"].get(
                            "generation", 1) + 1
                elif res is SECRETS:
                    for k in ("data", "type", "immutable"):
                        obj.pop(k, None)
                    self._secret_body(obj, new)
                elif res is LEASES:
                    obj["spec"] = lease_spec(name, new.get("spec"))
            if obj == cur:
                return copy.deepcopy(cur)
            return self._commit(res, "MODIFIED", obj, cur)

    def _delete(self, res, namespace, name):
        with self._cond:
            cur = self._objects[res.plural].get("%s/%s" % (namespace, name))
            if cur is None:
                raise res.not_found(name)
            return self._commit(res, "DELETED", copy.deepcopy(cur), cur)

    def add_connector(self, namespace, name, address=None, secret=None,
                      class_name="oci", spec=None, labels=None,
                      annotations=None, status=None, ca_secret=None):
        """Create a Connector; spec overrides address/secret/class_name.
        Returns the stored object."""
        if spec is None:
            spec = {"connectorClassName": class_name, "address": address}
            if secret:
                spec["auth"] = {"name": "tokenAuth",
                                "secretRef": {"name": secret}}
            if ca_secret:
                spec["caCertSecretRef"] = {"name": ca_secret}
        body = {"metadata": {"labels": labels, "annotations": annotations},
                "spec": spec, "status": status}
        return self._create(CONNECTORS, namespace, name, body)

    def update_connector(self, namespace, name, spec=None, status=None,
                         labels=None, annotations=None):
        """Change what is given (status through the status path, so the
        generation moves only with the spec).  Returns the stored object."""
        cur = self.get_connector(namespace, name)
        if cur is None:
            raise CONNECTORS.not_found(name)
        out = cur
        if spec is not None or labels is not None or annotations is not None:
            new = copy.deepcopy(cur)
            if spec is not None:
                new["spec"] = spec
            if labels is not None:
                new["metadata"]["labels"] = labels
            if annotations is not None:
                new["metadata"]["annotations"] = annotations
            out = self._update(CONNECTORS, namespace, name, new)
        if status is not None:
            out = self._update(CONNECTORS, namespace, name,
                               {"status": status}, only_status=True)
        return out

    def delete_connector(self, namespace, name):
        return self._delete(CONNECTORS, namespace, name)

    def get_connector(self, namespace, name):
        return self._get(CONNECTORS, namespace, name)

    def add_secret(self, namespace, name, data=None, type="Opaque",
                   labels=None, annotations=None):
        """data: key -> str or bytes (stored base64-encoded)."""
        return self._create(SECRETS, namespace, name, self._secret_manifest(
            data, type, labels, annotations))

    def update_secret(self, namespace, name, data=None, type=None,
                      labels=None, annotations=None):
        cur = self.get_secret(namespace, name)
        if cur is None:
            raise SECRETS.not_found(name)
        meta = cur["metadata"]
        body = self._secret_manifest(
            data, type or cur.get("type", "Opaque"),
            meta.get("labels") if labels is None else labels,
            meta.get("annotations") if annotations is None else annotations)
        if data is None:
            body["data"] = cur.get("data")
        return self._update(SECRETS, namespace, name, body)

    @staticmethod
    def _secret_manifest(data, type, labels, annotations):
        enc = {}
        for k, v in (data or {}).items():
            if isinstance(v, str):
                v = v.encode()
            enc[k] = base64.b64encode(v).decode()
        return {"metadata": {"labels": labels, "annotations": annotations},
                "data": enc, "type": type}

    def delete_secret(self, namespace, name):
        return self._delete(SECRETS, namespace, name)

    def get_secret(self, namespace, name):
        return self._get(SECRETS, namespace, name)

    def add_service_account(self, namespace, name, annotations=None,
                            labels=None):
        return self._create(SERVICEACCOUNTS, namespace, name, {
            "metadata": {"labels": labels, "annotations": annotations}})

    def update_service_account(self, namespace, name, annotations=None,
                               labels=None):
        cur = self.get_service_account(namespace, name)
        if cur is None:
            raise SERVICEACCOUNTS.not_found(name)
        meta = cur["metadata"]
        return self._update(SERVICEACCOUNTS, namespace, name, {"metadata": {
            "labels": meta.get("labels") if labels is None else labels,
            "annotations": (meta.get("annotations") if annotations is None
                            else annotations)}})

    def delete_service_account(self, namespace, name):
        """Also invalidates the tokens TokenRequest minted for it, as the
        real token authenticator does (they are bound to its uid)."""
        out = self._delete(SERVICEACCOUNTS, namespace, name)
        with self._cond:
            for tok in self._sa_tokens.pop("%s/%s" % (namespace, name), []):
                if tok in self._tokens:
                    self._tokens[tok].invalidated = True
        return out

    def get_service_account(self, namespace, name):
        return self._get(SERVICEACCOUNTS, namespace, name)

    def get_lease(self, namespace, name):
        return self._get(LEASES, namespace, name)

    def set_lease(self, namespace, name, holder, duration=15, renew=None,
                  acquire=None, transitions=0):
        """Create or replace a Lease (renew, acquire: seconds since the
        epoch; None = now)."""
        now = self.clock()
        spec = {"holderIdentity": holder, "leaseDurationSeconds": duration,
                "acquireTime": microtime(now if acquire is None else acquire),
                "renewTime": microtime(now if renew is None else renew),
                "leaseTransitions": transitions}
        return self.apply({"apiVersion": LEASES.api_version, "kind": "Lease",
                           "metadata": {"name": name, "namespace": namespace},
                           "spec": spec})

    def token_requests(self, namespace=None, name=None):
        """[(ns, name, expirationSeconds asked, seconds granted, audiences)]"""
        with self._cond:
            return [t for t in self._token_requests
                    if (namespace is None or t[0] == namespace)
                    and (name is None or t[1] == name)]

    def _token_request(self, ns, name, body):
        """POST .../serviceaccounts/NAME/token (authentication.k8s.io/v1)."""
        doc = self._decode(body, "TokenRequest", "authentication.k8s.io/v1")
        spec = doc.get("spec") or {}
        asked = spec.get("expirationSeconds", 3600)
        if not isinstance(asked, int) or isinstance(asked, bool) or \
                asked < 600 or asked > 2 ** 32:
            raise ApiError(status_body(
                422, "Invalid", "TokenRequest.authentication.k8s.io %s is "
                "invalid: spec.expirationSeconds: Invalid value: %r: may not "
                "specify a duration less than 10 minutes" % (go_quote(name),
                                                             asked)))
        auds = spec.get("audiences") or list(self.api_audiences)
        with self._cond:
            if self._get(SERVICEACCOUNTS, ns, name) is None:
                raise SERVICEACCOUNTS.not_found(name)
            granted = asked
            if self.token_request_max_lifetime is not None:
                granted = min(asked, self.token_request_max_lifetime)
            tok = self.mint_service_account_token(ns, name, audiences=auds,
                                                  expires_in=granted)
            exp = self._tokens[tok].expires_at
            self._sa_tokens.setdefault("%s/%s" % (ns, name), []).append(tok)
            self._token_requests.append((ns, name, asked, granted, auds))
        return {"kind": "TokenRequest",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"name": name, "namespace": ns,
                             "creationTimestamp": None},
                "spec": {"audiences": auds, "expirationSeconds": granted,
                         "boundObjectRef": None},
                "status": {"token": tok,
                           "expirationTimestamp": rfc3339(exp)}}

    def _get(self, res, namespace, name):
        with self._cond:
            o = self._objects[res.plural].get("%s/%s" % (namespace, name))
            return copy.deepcopy(o)

    def apply(self, obj, namespace=None):
        """Create or replace a Connector, Secret or RBAC object given as a
        manifest (a dict, e.g. from load_manifests)."""
        kind = obj.get("kind")
        if kind in Rbac.KINDS:
            if kind in ("Role", "RoleBinding") and namespace and not (
                    obj.get("metadata") or {}).get("namespace"):
                obj = copy.deepcopy(obj)
                obj["metadata"]["namespace"] = namespace
            with self._cond:
                self.rbac.apply(obj)
            return obj
        res = KIND_TO_RESOURCE.get(kind)
        if res is None:
            raise ValueError("FakeKubeAPI cannot store kind %r" % kind)
        meta = obj.get("metadata") or {}
        ns = meta.get("namespace") or namespace
        if not ns:
            raise ValueError("%s %s: no namespace" % (kind, meta.get("name")))
        if self._get(res, ns, meta["name"]) is None:
            return self._create(res, ns, meta["name"], obj)
        out = self._update(res, ns, meta["name"], obj)
        if res.status_sub and "status" in obj:
            out = self._update(res, ns, meta["name"], obj, only_status=True)
        return out

    def load_manifests(self, path, namespace=None, skip_kinds=(
            "CustomResourceDefinition", "Namespace", "ServiceAccount",
            "ConfigMap", "Deployment", "Service")):
        """apply() every document of a YAML file (the subset yaml_load_all
        reads); kinds in skip_kinds are ignored.  Returns the documents."""
        with open(path) as f:
            docs = yaml_load_all(f.read(), path)
        for d in docs:
            if d.get("kind") not in skip_kinds:
                self.apply(d, namespace)
        return docs

    @property
    def resource_version(self):
        with self._cond:
            return self._rv

    def compact(self, rv=None):
        """Make history up to rv (default: now) unavailable: new watches
        from an older resourceVersion, continue tokens and Exact lists older
        than it get 410 Expired.  Watches already open go on, as with the
        real watch cache (the fixture keeps every event in memory)."""
        with self._cond:
            rv = self._rv if rv is None else rv
            self._compacted_rv = max(self._compacted_rv, rv)

    @property
    def compacted_resource_version(self):
        with self._cond:
            return self._compacted_rv

    def _state_at(self, res, rv):
        if rv >= self._rv:
            return dict(self._objects[res.plural])
        state = {}
        for ev in self._events:
            if ev.rv > rv:
                break
            if ev.res is not res:
                continue
            if ev.type == "DELETED":
                state.pop(obj_key(ev.obj), None)
            else:
                state[obj_key(ev.obj)] = ev.obj
        return state

    # ---- test controls and observations

    def drop_watches(self, resource=None):
        """Cut every watch stream (of one resource if given) abruptly: no
        terminal chunk, no TLS close_notify.  Returns how many."""
        with self._cond:
            n = 0
            for w in self._watches:
                if resource is None or w.res.plural == resource:
                    w.dropped = True
                    n += 1
            self._cond.notify_all()
            return n

    def active_watches(self, resource=None):
        with self._cond:
            return sum(1 for w in self._watches
                       if not w.dropped and (resource is None
                                             or w.res.plural == resource))

    def wait_watches(self, n, resource=None, timeout=10):
        """Wait until at least n watches are open; returns the count."""
        return ocitest.wait_for(lambda: self.active_watches(resource) >= n
                                and self.active_watches(resource),
                                timeout, what="%d watch(es) on %s"
                                % (n, resource or "any resource"))

    def fail_next(self, path_regex, status, times=1, method=None,
                  retry_after=1, token=None):
        """Answer the next `times` requests whose path (with its query)
        matches path_regex (re.search) with: 429 (Retry-After + a
        TooManyRequests Status), 500 (InternalError), any other code (a
        Status with that code), "hang" (read the request, never answer,
        until stop() or hang_seconds), or "close" (cut the connection
        without an answer).  token: only requests with this bearer token
        (one replica among several).  Returns the Injection (its .hits)."""
        inj = Injection(path_regex, status, times, method, retry_after, token)
        with self._cond:
            self._injections.append(inj)
        return inj

    def clear_failures(self):
        with self._cond:
            self._injections = []

    def release_hangs(self):
        with self._cond:
            self._hang_release.set()
            self._hang_release = threading.Event()

    def requests(self, verb=None, resource=None, user=None, status=None):
        """Log entries (dicts: time, method, path, query, verb, resource,
        namespace, name, user, status, headers) matching every given filter.
        resource includes the subresource: "connectors/status"."""
        with self._cond:
            return [dict(r) for r in self._log
                    if (verb is None or r["verb"] == verb)
                    and (resource is None or r["resource"] == resource)
                    and (user is None or r["user"] == user)
                    and (status is None or r["status"] == status)]

    def request_count(self, verb=None, resource=None, **kw):
        return len(self.requests(verb, resource, **kw))

    def endpoint_counts(self):
        """{(verb, resource): requests} over the whole log."""
        out = {}
        with self._cond:
            for r in self._log:
                k = (r["verb"], r["resource"])
                out[k] = out.get(k, 0) + 1
        return out

    def tokenreview_count(self, token=None):
        with self._cond:
            return sum(1 for t, _ in self._tokenreviews
                       if token is None or t == token)

    def sar_count(self, user=None, name=None):
        """SubjectAccessReviews for a user and resource name (None: any)."""
        with self._cond:
            return sum(1 for u, _, a, _ in self._sars
                       if (user is None or u == user)
                       and (name is None or a.get("name", "") == name))

    def sar_log(self):
        with self._cond:
            return [{"user": u, "groups": list(g), "attributes": dict(a),
                     "allowed": ok} for u, g, a, ok in self._sars]

    def reset_counters(self):
        with self._cond:
            self._log = []
            self._tokenreviews = []
            self._sars = []

    # ---- HTTP

    def _dispatch(self, h):
        url = urllib.parse.urlsplit(h.path)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        rec = {"time": time.time(), "method": h.command, "path": url.path,
               "query": {k: v[-1] for k, v in query.items()}, "verb": None,
               "resource": None, "namespace": "", "name": "", "user": None,
               "status": None, "headers": dict(h.headers.items())}
        with self._cond:
            self._log.append(rec)
        try:
            body = self._read_body(h)
            inj = self._take_injection(h.command, h.path,
                                       h.headers.get("Authorization") or "")
            if inj is not None:
                self._inject(h, rec, inj)
                return
            if url.path in ("/healthz", "/livez", "/readyz"):
                rec["verb"], rec["resource"] = "get", url.path
                self._send(h, rec, 200, b"ok", "text/plain; charset=utf-8")
                return
            if url.path == "/version":
                rec["verb"], rec["resource"] = "get", url.path
                self._send(h, rec, 200, self._version())
                return
            ident = self._authenticate(h)
            if ident is None:
                raise ApiError(status_body(401, "Unauthorized", "Unauthorized"))
            rec["user"] = ident[0]
            info = self._route(h.command, url.path, rec["query"])
            if info is None:
                # what system:discovery would let through, then not found
                rec["verb"], rec["resource"] = h.command.lower(), url.path
                raise err_not_found_path()
            rec.update(verb=info["verb"], namespace=info.get("namespace", ""),
                       name=info.get("name", ""),
                       resource=info["resource"] + (
                           "/" + info["subresource"]
                           if info.get("subresource") else ""))
            # as in kube-apiserver, authorization comes before routing: an
            # unknown resource or verb is 403 unless RBAC allows it
            if self.enforce_rbac:
                ok, _ = self.authorize(ident[0], ident[1], info)
                if not ok:
                    raise ApiError(forbidden(ident[0], info))
            if not info["served"]:
                raise err_not_found_path()
            self._serve(h, rec, info, body)
        except ApiError as e:
            self._send(h, rec, e.status["code"], e.status, headers=e.headers)
        except (OSError, ssl.SSLError):
            h.close_connection = True
        except Exception as e:  # a bug in this fixture: make it visible
            with self._cond:
                self.errors.append(e)
            if rec["status"] is None:
                self._send(h, rec, 500, status_body(
                    500, "InternalError", "fake API server bug: %r" % e))
            else:
                h.aborted = True
                h.close_connection = True
                abort_socket(h.request)

    def _version(self):
        major, minor, _ = K8S_VERSION[1:].split(".")
        return {"major": major, "minor": minor, "gitVersion": K8S_VERSION,
                "gitCommit": "0" * 40, "gitTreeState": "clean",
                "buildDate": "2024-04-17T17:27:03Z", "goVersion": "go1.22.2",
                "compiler": "gc", "platform": "linux/amd64"}

    def _read_body(self, h):
        te = (h.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            data = b""
            while True:
                line = h.rfile.readline(1024)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while h.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += h.rfile.read(size)
                h.rfile.readline(1024)
                if len(data) > MAX_BODY:
                    raise ApiError(status_body(
                        413, "RequestEntityTooLarge",
                        "Request entity too large: limit is 3145728"))
        cl = (h.headers.get("Content-Length") or "0").strip()
        if not cl.isdigit():
            h.close_connection = True
            raise err_bad_request("invalid Content-Length %s" % go_quote(cl))
        n = int(cl)
        if n > MAX_BODY:
            h.close_connection = True
            raise ApiError(status_body(413, "RequestEntityTooLarge",
                                       "Request entity too large: limit is "
                                       "3145728"))
        return h.rfile.read(n) if n else b""

    def _take_injection(self, method, path, authorization=""):
        with self._cond:
            for inj in self._injections:
                if inj.remaining > 0 and (inj.method is None
                                          or inj.method == method) \
                        and (inj.token is None
                             or authorization == "Bearer " + inj.token) \
                        and inj.pattern.search(path):
                    inj.remaining -= 1
                    inj.hits += 1
                    return inj
        return None

    def _inject(self, h, rec, inj):
        rec["verb"] = "injected"
        if inj.action in ("hang", "close"):
            rec["status"] = inj.action
            if inj.action == "hang":
                with self._cond:
                    ev = self._hang_release
                ev.wait(self.hang_seconds)
            h.aborted = True
            h.close_connection = True
            abort_socket(h.request)
            return
        code = int(inj.action)
        reason = _INJECTED_REASON.get(code, "")
        headers = []
        if code == 429:
            msg = "Too many requests, please try again later."
            details = _details(retry=inj.retry_after)
            headers.append(("Retry-After", str(inj.retry_after)))
        elif code == 500:
            msg = "Internal error occurred: injected by the test"
            details = _details(causes=[{"message": "injected by the test"}])
        else:
            msg = "injected by the test"
            details = None
        self._send(h, rec, code, status_body(code, reason, msg, details),
                   headers=headers)

    def _authenticate(self, h):
        """(user, groups) or None."""
        cert = h.request.getpeercert()
        if cert:
            cn, orgs = "", []
            for rdn in cert.get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        cn = v
                    elif k == "organizationName":
                        orgs.append(v)
            return cn, orgs + ["system:authenticated"]
        auth = h.headers.get("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        with self._cond:
            info, _, err = self._check_token(token.strip(), self.api_audiences)
            if err:
                return None
            groups = list(info.groups)
            if "system:authenticated" not in groups:
                groups.append("system:authenticated")
            return info.user, groups

    def _route(self, method, path, query):
        """Request attributes (verb, group, version, resource, subresource,
        namespace, name) as kube-apiserver's RequestInfo computes them, and
        whether this fixture serves them; None for a non-resource path."""
        segs = path.strip("/").split("/")
        if segs[0] == "api" and len(segs) >= 3:
            group, version, rest = "", segs[1], segs[2:]
        elif segs[0] == "apis" and len(segs) >= 4:
            group, version, rest = segs[1], segs[2], segs[3:]
        else:
            return None
        ns = ""
        if rest[0] == "namespaces" and len(rest) >= 3:
            ns, rest = rest[1], rest[2:]
        resource = rest[0]
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        ok = {("authentication.k8s.io", "v1", "tokenreviews"): (False, ""),
              ("authorization.k8s.io", "v1", "subjectaccessreviews"): (False, ""),
              }
        for r in RESOURCES.values():
            ok[(r.group, r.version, r.plural)] = (True, "status"
                                                  if r.status_sub else "")
        spec = ok.get((group, version, resource))
        token_sub = (resource == SERVICEACCOUNTS.plural and sub == "token"
                     and method == "POST")
        served = not ("" in segs or len(rest) > 3 or spec is None
                      or (sub and sub != spec[1] and not token_sub)
                      or (not spec[0] and (ns or name))
                      or (spec[0] and name and not ns))
        watch = (query.get("watch") or "").lower() in ("1", "t", "true")
        if method in ("GET", "HEAD"):
            verb = "watch" if watch else ("get" if name else "list")
        elif method == "POST":
            verb = "create"
        elif method == "PUT":
            verb = "update"
        elif method == "PATCH":
            verb = "patch"
        elif method == "DELETE":
            verb = "delete" if name else "deletecollection"
        else:
            raise err_method_not_allowed()
        if verb in ("list", "watch") and not name:
            m = re.fullmatch(r"metadata\.name==?([^,]+)",
                             query.get("fieldSelector") or "")
            if m:
                name = m.group(1)
        return {"verb": verb, "group": group, "version": version,
                "resource": resource, "subresource": sub, "namespace": ns,
                "name": name, "watch_path_name": bool(rest[1:2]) and watch,
                "served": served}

    def _serve(self, h, rec, info, body):
        resource, verb = info["resource"], info["verb"]
        if resource == "tokenreviews":
            if verb != "create":
                raise err_method_not_allowed()
            self._send(h, rec, 201, self._tokenreview(body))
            return
        if resource == "subjectaccessreviews":
            if verb != "create":
                raise err_method_not_allowed()
            self._send(h, rec, 201, self._sar(body))
            return
        res = RESOURCES[resource]
        ns, name, q = info["namespace"], info["name"], rec["query"]
        if res is SERVICEACCOUNTS and info["subresource"] == "token":
            self._send(h, rec, 201, self._token_request(ns, name, body))
            return
        if verb == "watch":
            self._watch(h, rec, res, ns, q, name if info["watch_path_name"]
                        else None)
        elif verb == "list":
            self._send(h, rec, 200, self._list(res, ns, q), compress=True)
        elif verb == "get":
            o = self._get(res, ns, name)
            if o is None:
                raise res.not_found(name)
            self._send(h, rec, 200, encode_object(res, o))
        elif verb == "create":
            self._send(h, rec, 201, encode_object(
                res, self._http_create(res, ns, body)))
        elif verb == "update":
            self._send(h, rec, 200, encode_object(res, self._http_update(
                res, ns, name, info["subresource"], body)))
        elif verb == "patch":
            self._send(h, rec, 200, encode_object(res, self._http_patch(
                h, res, ns, name, info["subresource"], body)))
        elif verb == "delete":
            o = self._delete(res, ns, name)
            if res.crd:
                self._send(h, rec, 200, encode_object(res, o))
            else:
                self._send(h, rec, 200, status_body(
                    200, "", "", {"name": name, "kind": res.plural,
                                  "uid": o["metadata"]["uid"]},
                    status="Success"))
        else:
            raise err_method_not_allowed()

    # ---- reviews

    @staticmethod
    def _decode(body, kind, api_version):
        try:
            doc = json.loads(body or b"null")
        except ValueError as e:
            raise err_bad_request("couldn't get version/kind; json parse "
                                  "error: %s" % e)
        if not isinstance(doc, dict):
            raise err_bad_request("couldn't get version/kind; json parse "
                                  "error: not an object")
        if doc.get("apiVersion", api_version) != api_version:
            raise err_bad_request(
                "the API version in the data (%s) does not match the expected "
                "API version (%s)" % (doc.get("apiVersion"), api_version))
        if doc.get("kind", kind) != kind:
            raise err_bad_request(
                "%s in version %s cannot be handled as a %s: kind mismatch"
                % (doc.get("kind"), go_quote(api_version.split("/")[-1]), kind))
        return doc

    @staticmethod
    def _echo_meta(doc):
        meta = doc.get("metadata") or {}
        out = {}
        if meta.get("name"):
            out["name"] = meta["name"]
        out["creationTimestamp"] = None
        return out

    def _tokenreview(self, body):
        av = "authentication.k8s.io/v1"
        doc = self._decode(body, "TokenReview", av)
        spec_in = doc.get("spec") or {}
        token = spec_in.get("token") or ""
        if not token:
            raise err_bad_request("token is required for TokenReview in "
                                  "authentication")
        spec = {"token": token}
        if spec_in.get("audiences"):
            spec["audiences"] = list(spec_in["audiences"])
        want = spec.get("audiences") or self.api_audiences
        with self._cond:
            info, auds, err = self._check_token(token, want)
            self._tokenreviews.append((token, info is not None))
        if info is None:
            status = {"user": {}, "error": err}
            if self.explicit_unauthenticated:
                status = {"authenticated": False, "user": {}, "error": err}
        else:
            user = {"username": info.user}
            if info.uid:
                user["uid"] = info.uid
            if info.groups:
                user["groups"] = list(info.groups)
            if info.extra:
                user["extra"] = sorted_json(info.extra)
            status = {"authenticated": True, "user": user, "audiences": auds}
        return {"kind": "TokenReview", "apiVersion": av,
                "metadata": self._echo_meta(doc), "spec": spec,
                "status": status}

    def _sar(self, body):
        av = "authorization.k8s.io/v1"
        doc = self._decode(body, "SubjectAccessReview", av)
        spec_in = doc.get("spec") or {}
        ra = spec_in.get("resourceAttributes")
        nra = spec_in.get("nonResourceAttributes")
        kind, group = "SubjectAccessReview", "authorization.k8s.io"
        if (ra is None) == (nra is None):
            raise err_invalid(kind, group, "", "spec.resourceAttributes",
                              "Invalid value: \"null\": exactly one of "
                              "nonResourceAttributes or resourceAttributes "
                              "must be specified")
        user = spec_in.get("user") or ""
        groups = list(spec_in.get("groups") or [])
        if not user and not groups:
            raise err_invalid(kind, group, "", "spec.user",
                              "Invalid value: \"\": at least one of user or "
                              "group must be specified")
        spec = {}
        if ra is not None:
            order = ("namespace", "verb", "group", "version", "resource",
                     "subresource", "name")
            spec["resourceAttributes"] = {k: ra[k] for k in order if ra.get(k)}
            attrs = {k: ra.get(k) or "" for k in order}
        else:
            spec["nonResourceAttributes"] = {k: nra[k] for k in ("path", "verb")
                                             if nra.get(k)}
            attrs = {"path": nra.get("path") or "", "verb": nra.get("verb") or ""}
        if user:
            spec["user"] = user
        if groups:
            spec["groups"] = groups
        if spec_in.get("extra"):
            spec["extra"] = sorted_json(spec_in["extra"])
        if spec_in.get("uid"):
            spec["uid"] = spec_in["uid"]
        with self._cond:
            allowed, reason = self.rbac.authorize(user, groups, attrs)
            self._sars.append((user, tuple(groups), attrs, allowed))
        status = {"allowed": allowed}
        if reason:
            status["reason"] = reason
        return {"kind": kind, "apiVersion": av,
                "metadata": self._echo_meta(doc), "spec": spec,
                "status": status}

    # ---- object endpoints

    def _http_object(self, res, ns, body, name=None):
        try:
            doc = json.loads(body or b"null")
        except ValueError as e:
            raise err_bad_request("json parse error: %s" % e)
        if not isinstance(doc, dict):
            raise err_bad_request("the body must be a JSON object")
        if doc.get("kind", res.kind) != res.kind or doc.get(
                "apiVersion", res.api_version) != res.api_version:
            raise err_bad_request("%s in version %s cannot be handled as a %s"
                                  % (doc.get("kind"), go_quote(res.version),
                                     res.kind))
        meta = doc.get("metadata") or {}
        if meta.get("namespace") and meta["namespace"] != ns:
            raise err_bad_request("the namespace of the provided object does "
                                  "not match the namespace sent on the "
                                  "request")
        if name is not None and meta.get("name") != name:
            raise err_bad_request("the name of the object (%s) does not match "
                                  "the name on the URL (%s)"
                                  % (meta.get("name"), name))
        return doc

    def _http_create(self, res, ns, body):
        doc = self._http_object(res, ns, body)
        name = (doc.get("metadata") or {}).get("name")
        if not name:
            raise err_invalid(res.kind, res.group, "", "metadata.name",
                              "Required value: name or generateName is "
                              "required")
        if res.status_sub:
            doc = dict(doc)
            doc.pop("status", None)   # the main endpoint drops status
        return self._create(res, ns, name, doc)

    def _http_update(self, res, ns, name, sub, body):
        doc = self._http_object(res, ns, body, name)
        rv = (doc.get("metadata") or {}).get("resourceVersion")
        if not rv and (res.crd or res is LEASES):
            raise err_invalid(res.kind, res.group, name,
                              "metadata.resourceVersion",
                              "Invalid value: 0x0: must be specified for an "
                              "update")
        return self._update(res, ns, name, doc, only_status=(sub == "status"),
                            expect_rv=rv or None)

    def _http_patch(self, h, res, ns, name, sub, body):
        ctype = (h.headers.get("Content-Type") or "").split(";")[0].strip()
        try:
            patch = json.loads(body or b"null")
        except ValueError as e:
            raise err_bad_request("error decoding patch: %s" % e)
        with self._cond:
            cur = self._get(res, ns, name)
            if cur is None:
                raise res.not_found(name)
            try:
                if ctype == "application/merge-patch+json" or (
                        ctype == "application/strategic-merge-patch+json"
                        and not res.crd):
                    new = merge_patch(cur, patch)
                elif ctype == "application/json-patch+json":
                    new = json_patch(cur, patch)
                else:
                    raise ApiError(status_body(
                        415, "UnsupportedMediaType",
                        "the body of the request was in an unknown format - "
                        "accepted media types include: "
                        + (PATCH_TYPES_CR if res.crd else PATCH_TYPES_BUILTIN),
                        _details()))
            except PatchError as e:
                raise ApiError(status_body(422, "Invalid", str(e)))
            if not isinstance(new, dict):
                raise err_bad_request("the patch produced a non-object")
            rv = (new.get("metadata") or {}).get("resourceVersion")
            if rv == cur["metadata"]["resourceVersion"]:
                rv = None   # untouched by the patch: no precondition
            return self._update(res, ns, name, new,
                                only_status=(sub == "status"), expect_rv=rv)

    def _list_rv(self, q):
        """The resourceVersion a list is served at, checking it is not too
        old; None means "now"."""
        rv = q.get("resourceVersion", "")
        match = q.get("resourceVersionMatch", "")
        if rv in ("", "0"):
            return None
        if not rv.isdigit():
            raise err_bad_request("invalid resource version: %s" % rv)
        n = int(rv)
        exact = match == "Exact" or (not match and q.get("limit"))
        if n > self._rv:
            raise ApiError(status_body(
                504, "Timeout", "Too large resource version: %d, current: %d"
                % (n, self._rv), _details(causes=[{
                    "reason": "ResourceVersionTooLarge",
                    "message": "Too large resource version"}], retry=1)))
        if exact:
            if n < self._compacted_rv:
                raise ApiError(status_body(
                    410, "Expired",
                    "The resourceVersion for the provided list is too old."))
            return n
        return None

    def _list(self, res, ns, q):
        labels = parse_label_selector(q.get("labelSelector", ""))
        fields = parse_field_selector(q.get("fieldSelector", ""), res)
        limit = q.get("limit", "")
        if limit and not limit.isdigit():
            raise err_bad_request("limit: invalid value %s" % limit)
        limit = int(limit) if limit else 0
        if q.get("resourceVersion") == "0":
            limit = 0   # the watch cache serves RV=0 lists whole
        with self._cond:
            start = ""
            cont = q.get("continue", "")
            if cont:
                at, start = self._decode_continue(cont)
                if at < self._compacted_rv:
                    raise ApiError(status_body(
                        410, "Expired", CONTINUE_TOO_OLD,
                        list_meta={"continue": self._encode_continue(
                            -1, start)}))
            else:
                at = self._list_rv(q)
                at = self._rv if at is None else at
            state = self._state_at(res, at)
        prefix = ns + "/" if ns else ""
        keys = sorted(k for k in state if k.startswith(prefix))
        items, more_after = [], None
        for k in keys:
            rel = k[len(prefix):]
            if start and rel < start:
                continue
            o = state[k]
            if not (labels_match(labels, o["metadata"].get("labels"))
                    and fields_match(fields, o)):
                continue
            if limit and len(items) == limit:
                more_after = rel
                break
            items.append(o)
        meta = {"resourceVersion": str(at)}
        if more_after is not None:
            last = items[-1]["metadata"]
            last_rel = ("%s/%s" % (last["namespace"], last["name"]))[
                len(prefix):]
            meta["continue"] = self._encode_continue(at, last_rel + "\x00")
            if not labels and not fields:
                meta["remainingItemCount"] = sum(
                    1 for k in keys if k[len(prefix):] > last_rel)
        enc = [encode_object(res, o, in_list=True) for o in items]
        if res.crd:
            meta.setdefault("continue", "")
            return sorted_json({"apiVersion": res.api_version, "items": enc,
                                "kind": res.kind + "List", "metadata": meta})
        ordered = {"resourceVersion": meta["resourceVersion"]}
        for k in ("continue", "remainingItemCount"):
            if k in meta:
                ordered[k] = meta[k]
        return {"kind": res.kind + "List", "apiVersion": res.api_version,
                "metadata": ordered, "items": enc}

    @staticmethod
    def _encode_continue(rv, start):
        doc = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start},
                         separators=(",", ":"))
        return base64.urlsafe_b64encode(doc.encode()).decode().rstrip("=")

    @staticmethod
    def _decode_continue(token):
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            doc = json.loads(raw)
            if doc.get("v") != "meta.k8s.io/v1":
                raise ValueError("unknown version")
            return int(doc["rv"]), str(doc["start"])
        except (ValueError, KeyError, TypeError) as e:
            raise err_bad_request("continue key is not valid: %s" % e)

    # ---- watch

    def _watch(self, h, rec, res, ns, q, path_name):
        labels = parse_label_selector(q.get("labelSelector", ""))
        fields = parse_field_selector(q.get("fieldSelector", ""), res)
        if path_name:
            fields.append(("metadata.name", True, path_name))

        def matches(o):
            return (o is not None
                    and (not ns or o["metadata"].get("namespace") == ns)
                    and labels_match(labels, o["metadata"].get("labels"))
                    and fields_match(fields, o))

        rv_param = q.get("resourceVersion", "")
        bookmarks = (q.get("allowWatchBookmarks") or "").lower() in (
            "1", "t", "true")
        initial_events = (q.get("sendInitialEvents") or "").lower() in (
            "1", "t", "true")
        if rv_param and not rv_param.isdigit():
            raise err_bad_request("invalid resource version: %s" % rv_param)
        timeout = q.get("timeoutSeconds", "")
        timeout = int(timeout) if timeout.isdigit() and int(timeout) > 0 \
            else self.default_watch_timeout
        deadline = time.monotonic() + timeout
        first = []
        with self._cond:
            if rv_param in ("", "0") or initial_events:
                state = self._objects[res.plural]
                first = [("ADDED", state[k]) for k in sorted(state)
                         if matches(state[k])]
                since = self._rv
                if initial_events:
                    first.append(("BOOKMARK", bookmark_object(res, since, True)))
            else:
                since = int(rv_param)
                if since < self._compacted_rv:
                    st = status_body(410, "Expired",
                                     "too old resource version: %d (%d)"
                                     % (since, self._compacted_rv))
                    if self.expired_watch == "http":
                        raise ApiError(st)
                    first = [("ERROR", st)]
                    deadline = 0
            w = _Watch(res)
            self._watches.add(w)
        try:
            self._stream_watch(h, rec, res, w, first, since, matches,
                               bookmarks, deadline)
        finally:
            with self._cond:
                self._watches.discard(w)

    def _events_since(self, res, since, matches):
        out = []
        for ev in self._events:
            if ev.rv <= since or ev.res is not res:
                continue
            now, before = matches(ev.obj), matches(ev.prev)
            if ev.type == "ADDED" and now:
                out.append(("ADDED", ev.obj))
            elif ev.type == "MODIFIED":
                if now and before:
                    out.append(("MODIFIED", ev.obj))
                elif now:
                    out.append(("ADDED", ev.obj))
                elif before:
                    gone = copy.deepcopy(ev.prev)
                    gone["metadata"]["resourceVersion"] = str(ev.rv)
                    out.append(("DELETED", gone))
            elif ev.type == "DELETED" and before:
                out.append(("DELETED", ev.obj))
        return out

    def _stream_watch(self, h, rec, res, w, first, since, matches, bookmarks,
                      deadline):
        gz = None
        headers = [("Transfer-Encoding", "chunked")]
        if self.gzip_watch and self._wants_gzip(h):
            gz = zlib.compressobj(6, zlib.DEFLATED, 31)
            headers.append(("Content-Encoding", "gzip"))
        self._head(h, rec, 200, "application/json", headers)
        self._write_events(h, res, gz, first)
        if first and first[0][0] == "ERROR":
            self._end_chunks(h, gz)
            return
        next_bookmark = time.monotonic() + self.bookmark_interval
        while True:
            with self._cond:
                evs = self._events_since(res, since, matches)
                since = self._rv
                dropped = w.dropped
                if not evs and not dropped:
                    self._cond.wait(0.2)
                    evs = self._events_since(res, since, matches)
                    since = self._rv
                    dropped = w.dropped
            if dropped:
                h.aborted = True
                h.close_connection = True
                abort_socket(h.request)
                return
            out = [(t, o) for t, o in evs]
            now = time.monotonic()
            if bookmarks and now >= next_bookmark:
                out.append(("BOOKMARK", bookmark_object(res, since)))
                next_bookmark = now + self.bookmark_interval
            if out:
                self._write_events(h, res, gz, out)
            if now >= deadline:
                self._end_chunks(h, gz)
                return
            if self._peer_closed(h.request):
                h.close_connection = True
                return

    def _write_events(self, h, res, gz, events):
        for type_, obj in events:
            if type_ in ("ADDED", "MODIFIED", "DELETED"):
                obj = encode_object(res, obj)
            data = go_json({"type": type_, "object": obj})
            if gz is not None:
                data = gz.compress(data) + gz.flush(zlib.Z_SYNC_FLUSH)
            step = self.watch_chunk_size or len(data)
            for i in range(0, len(data), step):
                part = data[i:i + step]
                h.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))

    @staticmethod
    def _end_chunks(h, gz):
        if gz is not None:
            tail = gz.flush()
            h.wfile.write(b"%x\r\n%s\r\n" % (len(tail), tail))
        h.wfile.write(b"0\r\n\r\n")

    @staticmethod
    def _peer_closed(sock):
        """The client went away (or sent anything, which a watching client
        never does but to close)."""
        try:
            r, _, _ = select.select([sock.fileno()], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(r)

    # ---- response writing

    @staticmethod
    def _wants_gzip(h):
        for part in (h.headers.get("Accept-Encoding") or "").split(","):
            enc, _, params = part.strip().partition(";")
            if enc.strip().lower() == "gzip":
                return params.replace(" ", "") not in ("q=0", "q=0.0")
        return False

    def _head(self, h, rec, code, ctype, extra):
        rec["status"] = code
        h.send_response_only(code)
        h.send_header("Audit-Id", str(uuid.uuid4()))
        h.send_header("Cache-Control", "no-cache, private")
        h.send_header("Content-Type", ctype)
        h.send_header("X-Kubernetes-Pf-Flowschema-Uid", PF_FLOWSCHEMA_UID)
        h.send_header("X-Kubernetes-Pf-Prioritylevel-Uid", PF_PRIORITY_UID)
        h.send_header("Date", h.date_time_string())
        for k, v in extra:
            h.send_header(k, v)
        h.end_headers()

    def _send(self, h, rec, code, body, ctype="application/json",
              headers=(), compress=False):
        data = body if isinstance(body, bytes) else go_json(body)
        extra = list(headers)
        if compress and self._wants_gzip(h) and len(data) >= self.gzip_min_bytes:
            data = gzip.compress(data)
            extra.append(("Content-Encoding", "gzip"))
        extra.append(("Content-Length", str(len(data))))
        self._head(h, rec, code, ctype, extra)
        if h.command != "HEAD":
            h.wfile.write(data)


# --------------------------------------------------------------------------
# A YAML subset reader, for our manifests (no YAML library in the standard
# library).  Block mappings and sequences, plain/quoted scalars, flow [] and
# {}, literal | and folded > blocks, comments, "---".  It refuses what it
# does not understand (anchors, tags, multi-line plain scalars, tabs) and the
# YAML 1.1 booleans yes/no/on/off/y/n that Kubernetes' parser would turn
# into true/false, so a manifest it accepts means the same to kubectl.


class YamlError(ValueError):
    pass


_YAML11_BOOLS = {"y", "yes", "n", "no", "on", "off"}


class _Yaml:
    def __init__(self, text, name):
        self.lines = text.split("\n")
        self.name = name
        self.pos = 0

    def err(self, msg, lineno=None):
        raise YamlError("%s:%d: %s" % (self.name, (lineno if lineno is not None
                                                   else self.pos) + 1, msg))

    @staticmethod
    def strip_comment(s):
        quote = None
        prev = " "
        for i, ch in enumerate(s):
            if quote:
                if ch == quote:
                    if quote == "'" and s[i + 1:i + 2] == "'":
                        continue
                    if quote == '"' and prev == "\\":
                        prev = ch
                        continue
                    quote = None
            elif ch in "'\"" and prev in " :-[{,":
                quote = ch
            elif ch == "#" and prev in " \t":
                return s[:i].rstrip()
            prev = ch if not (prev == "\\" and ch == "\\") else " "
        return s.rstrip()

    def is_doc_marker(self, i):
        ln = self.lines[i]
        return ln in ("---", "...") or ln.startswith("--- ") or \
            ln.startswith("---\t")

    def peek(self):
        """(index, indent, content) of the next significant line, or None at
        the end of the document."""
        i = self.pos
        while i < len(self.lines):
            if self.is_doc_marker(i):
                return None
            raw = self.lines[i]
            content = self.strip_comment(raw)
            if content.strip():
                body = content.lstrip(" ")
                if body.startswith("\t") or "\t" in content[:len(content)
                                                           - len(body)]:
                    self.err("tab in indentation", i)
                return i, len(content) - len(body), body
            i += 1
        return None

    def documents(self):
        docs = []
        while self.pos < len(self.lines):
            if self.is_doc_marker(self.pos):
                rest = self.lines[self.pos][3:].strip()
                if rest and not rest.startswith("#"):
                    self.err("content after '---' is not supported")
                self.pos += 1
                continue
            nxt = self.peek()
            if nxt is None:
                # blank or comments up to a marker or the end
                while self.pos < len(self.lines) and not self.is_doc_marker(
                        self.pos):
                    self.pos += 1
                continue
            if nxt[1] != 0:
                self.err("a document must start at column 1", nxt[0])
            docs.append(self.node(0))
            after = self.peek()
            if after is not None:
                self.err("unexpected content (bad indentation?)", after[0])
        return docs

    def node(self, indent):
        nxt = self.peek()
        if nxt is None or nxt[1] < indent:
            return None
        i, ind, content = nxt
        if content == "-" or content.startswith("- "):
            return self.sequence(ind)
        if self.split_key(content, i) is not None:
            return self.mapping(ind)
        self.pos = i + 1
        return self.scalar(content, i)

    def split_key(self, content, lineno):
        """(key, rest) if content is "key: ..." else None."""
        if content[0] in "'\"":
            q = content[0]
            end = content.find(q, 1)
            while q == "'" and end != -1 and content[end + 1:end + 2] == "'":
                end = content.find(q, end + 2)
            if end == -1:
                return None
            after = content[end + 1:]
            if after.startswith(":") and (len(after) == 1 or after[1] == " "):
                return self.scalar(content[:end + 1], lineno), after[1:].strip()
            return None
        if content[0] in "[{":
            return None
        m = re.match(r"^([^#:]*?(?::[^ :][^:]*?)*):(?: |$)", content)
        if not m:
            return None
        key = m.group(1)
        if not key or key.startswith("- "):
            return None
        return key, content[m.end():].strip()

    def mapping(self, indent):
        out = {}
        while True:
            nxt = self.peek()
            if nxt is None or nxt[1] < indent:
                return out
            i, ind, content = nxt
            if ind > indent:
                self.err("unexpected indentation", i)
            if content == "-" or content.startswith("- "):
                return out
            kv = self.split_key(content, i)
            if kv is None:
                self.err("expected 'key: value', got %r" % content, i)
            key, rest = kv
            if not isinstance(key, str):
                key = str(key)
            if key in out:
                self.err("duplicate key %r" % key, i)
            self.pos = i + 1
            out[key] = self.value_after(rest, indent, i, seq_ok=True)

    def value_after(self, rest, indent, lineno, seq_ok):
        if rest == "":
            nxt = self.peek()
            if nxt is None:
                return None
            if nxt[1] > indent:
                return self.node(nxt[1])
            if seq_ok and nxt[1] == indent and (nxt[2] == "-" or
                                                nxt[2].startswith("- ")):
                return self.sequence(indent)
            return None
        if rest[0] in "|>":
            return self.block_scalar(rest, indent, lineno)
        return self.scalar(rest, lineno)

    def sequence(self, indent):
        out = []
        while True:
            nxt = self.peek()
            if nxt is None or nxt[1] < indent:
                return out
            i, ind, content = nxt
            if ind > indent:
                self.err("unexpected indentation", i)
            if not (content == "-" or content.startswith("- ")):
                return out
            after = content[1:].lstrip(" ")
            if after == "":
                self.pos = i + 1
                out.append(self.value_after("", indent, i, seq_ok=False))
                continue
            inner = ind + len(content) - len(after)
            if after == "-" or after.startswith("- ") or \
                    self.split_key(after, i) is not None:
                # "- key: v" starts a mapping (or "- - x" a sequence) whose
                # column is that of the text after the dash
                self.lines[i] = " " * inner + self.lines[i][inner:]
                out.append(self.node(inner))
                continue
            self.pos = i + 1
            if after[0] in "|>":
                out.append(self.block_scalar(after, indent, i))
            else:
                out.append(self.scalar(after, i))

    def block_scalar(self, header, indent, lineno):
        m = re.fullmatch(r"([|>])([+-]?)([1-9]?)", header.strip())
        if not m:
            self.err("bad block scalar header %r" % header, lineno)
        style, chomp = m.group(1), m.group(2)
        block_indent = indent + int(m.group(3)) if m.group(3) else None
        lines = []
        i = self.pos
        while i < len(self.lines) and not self.is_doc_marker(i):
            raw = self.lines[i]
            if raw.strip() == "":
                lines.append("")
                i += 1
                continue
            ind = len(raw) - len(raw.lstrip(" "))
            if block_indent is None:
                if ind <= indent:
                    break
                block_indent = ind
            if ind < block_indent:
                break
            lines.append(raw[block_indent:])
            i += 1
        self.pos = i
        while lines and lines[-1] == "" and chomp != "+":
            lines.pop()
        if style == "|":
            text = "\n".join(lines)
        else:
            text = ""
            for ln in lines:
                if ln == "":
                    text += "\n"
                elif text and not text.endswith("\n") and not ln.startswith(" "):
                    text += " " + ln
                else:
                    text += ln
        if chomp != "-" and lines:
            text += "\n"
        return text

    def scalar(self, s, lineno):
        s = s.strip()
        if s[0] == '"':
            return self.double_quoted(s, lineno)
        if s[0] == "'":
            if len(s) < 2 or s[-1] != "'" or "'" in s[1:-1].replace("''", ""):
                self.err("bad single-quoted scalar %s" % s, lineno)
            return s[1:-1].replace("''", "'")
        if s[0] in "[{":
            v, rest = self.flow(s, 0, lineno)
            if rest.strip():
                self.err("text after a flow collection: %r" % rest, lineno)
            return v
        if s[0] in "&*!%@`":
            self.err("unsupported YAML (anchor, alias, tag or reserved "
                     "indicator): %r" % s, lineno)
        if ": " in s or s.endswith(":"):
            self.err("plain scalar containing ': ' (quote it): %r" % s, lineno)
        nxt = self.peek()
        if nxt is not None and nxt[0] == self.pos and nxt[2] and \
                not nxt[2].startswith("- ") and nxt[2] != "-" and \
                self.split_key(nxt[2], nxt[0]) is None and \
                nxt[1] > 0 and self._continues(nxt):
            self.err("multi-line plain scalars are not supported", nxt[0])
        return self.resolve(s, lineno)

    def _continues(self, nxt):
        # a more-indented plain line right after a scalar value
        prev = self.lines[self.pos - 1]
        return nxt[1] > len(prev) - len(prev.lstrip(" "))

    def resolve(self, s, lineno):
        low = s.lower()
        if low in ("null", "~"):
            return None
        if low == "true":
            return True
        if low == "false":
            return False
        if low in _YAML11_BOOLS:
            self.err("%r is a boolean in YAML 1.1 (Kubernetes' parser): "
                     "quote it" % s, lineno)
        if re.fullmatch(r"-?(0|[1-9][0-9]*)", s):
            return int(s)
        if re.fullmatch(r"0[0-9]+", s):
            self.err("%r is octal in YAML 1.1: quote it" % s, lineno)
        if re.fullmatch(r"-?[0-9]+\.[0-9]+", s):
            return float(s)
        return s

    def double_quoted(self, s, lineno):
        if len(s) < 2 or s[-1] != '"':
            self.err("unterminated double-quoted scalar %s" % s, lineno)
        try:
            v = json.loads(s)
        except ValueError:
            self.err("unsupported escape in %s" % s, lineno)
        return v

    def flow(self, s, i, lineno):
        """Parse a flow collection starting at s[i]; (value, rest)."""
        open_ch = s[i]
        close = "]" if open_ch == "[" else "}"
        i += 1
        items = [] if open_ch == "[" else {}
        while True:
            while i < len(s) and s[i] == " ":
                i += 1
            if i >= len(s):
                self.err("unterminated flow collection", lineno)
            if s[i] == close:
                return items, s[i + 1:]
            # one entry: up to a top-level ',' or the closing bracket
            if s[i] in "[{":
                v, rest = self.flow(s, i, lineno)
                i = len(s) - len(rest)
                entry_key = None
            else:
                j, quote = i, None
                while j < len(s):
                    ch = s[j]
                    if quote:
                        if ch == quote:
                            quote = None
                    elif ch in "'\"" and j == i:
                        quote = ch
                    elif ch in ",]}":
                        break
                    j += 1
                text = s[i:j].strip()
                i = j
                entry_key = None
                if open_ch == "{":
                    kv = self.split_key(text, lineno)
                    if kv is None:
                        self.err("expected 'key: value' in %r" % s, lineno)
                    entry_key, rest_v = kv
                    v = self.scalar(rest_v, lineno) if rest_v else None
                else:
                    if not text:
                        self.err("empty flow entry in %r" % s, lineno)
                    v = self.resolve_flow(text, lineno)
            if open_ch == "[":
                items.append(v)
            else:
                if entry_key is None:
                    self.err("flow mapping entries need keys", lineno)
                items[entry_key] = v
            while i < len(s) and s[i] == " ":
                i += 1
            if i < len(s) and s[i] == ",":
                i += 1

    def resolve_flow(self, text, lineno):
        if text[0] in "'\"":
            return self.scalar(text, lineno)
        return self.resolve(text, lineno)


def yaml_load_all(text, name="<yaml>"):
    """The documents of a YAML stream in the subset described above;
    YamlError (with file:line) for anything outside it."""
    return [d for d in _Yaml(text, name).documents() if d is not None]


# --------------------------------------------------------------------------
# Standalone


def load_state(api, state):
    settings = state.get("settings") or {}
    for k in ("bookmark_interval", "expired_watch", "gzip_min_bytes",
              "gzip_watch", "watch_chunk_size", "enforce_rbac"):
        if k in settings:
            setattr(api, k, settings[k])
    for t in state.get("tokens") or []:
        api.add_token(t["token"], t["user"], uid=t.get("uid", ""),
                      groups=t.get("groups") or (), extra=t.get("extra"),
                      audiences=t.get("audiences"),
                      expires_in=t.get("expires_in"))
    for sa in state.get("service_accounts") or []:
        api.mint_service_account_token(sa["namespace"], sa["name"],
                                       audiences=sa.get("audiences"),
                                       expires_in=sa.get("expires_in", 3600),
                                       token=sa.get("token"))
    for obj in state.get("objects") or []:
        api.apply(obj)


def main(argv=None):
    ap = argparse.ArgumentParser(description="A fake Kubernetes API server "
                                 "for ocigate's tests.")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--state", help="JSON file with tokens, RBAC and objects")
    ap.add_argument("--pki", help="directory with ca.pem/server.pem/server.key"
                    " (made with ocitest.make_pki when missing)")
    ap.add_argument("--kubeconfig", help="write a kubeconfig for ocigate here")
    ap.add_argument("--manifest", action="append", default=[],
                    help="YAML manifests to load (Connector, Secret, RBAC)")
    ap.add_argument("--namespace", default="default",
                    help="namespace for manifests that name none")
    args = ap.parse_args(argv)

    tmp = None
    pki_dir = args.pki
    if pki_dir is None:
        tmp = tempfile.mkdtemp(prefix="fake-kube-api-")
        pki_dir = tmp
    if os.path.exists(os.path.join(pki_dir, "server.pem")):
        pki = ocitest.Pki(pki_dir)
    else:
        pki = ocitest.make_pki(pki_dir, cn="fake-kube-api")
    state = {}
    if args.state:
        with open(args.state) as f:
            state = json.load(f)
    api = FakeKubeAPI(pki, port=args.port,
                      ocigate_token=state.get("ocigate_token"))
    load_state(api, state)
    for m in args.manifest:
        api.load_manifests(m, namespace=args.namespace)
    api.start()
    if args.kubeconfig:
        api.write_kubeconfig(args.kubeconfig)
    print(api.url, flush=True)
    sys.stderr.write("ca: %s\nocigate token: %s\n" % (pki.ca_pem,
                                                      api.ocigate_token))
    sys.stderr.flush()

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    signal.signal(signal.SIGINT, lambda *a: done.set())
    while not done.wait(1):
        pass
    api.stop()
    if tmp:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
