# SPDX-License-Identifier: MIT
"""FakeAPIServer: a Kubernetes API server stand-in on 127.0.0.1 for
reflex's tests (Python 3 standard library only).

    from fakek8s import FakeAPIServer, fixtures
    with FakeAPIServer(fixture="C14") as srv:
        srv.write_kubeconfig(path)
        ... kubectl --kubeconfig path ... / reflex ...
        srv.tick()                        # one controller step
        srv.get("deployments", "ns-a", "svc-a")

See README.md beside this file for the whole API.
"""

import base64
import collections
import copy
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import k8sobj
from .api import Api
from .controllers import CONTROLLERS, Simulator
from .k8sobj import ApiError, Clock
from .resources import Registry
from .sel import match_fields, match_requirements
from .store import Expired, Store

LOOPBACK = "127.0.0.1"
BODY_MAX = 3 * 1024 * 1024
DEFAULT_TOKEN = "fakek8s-token"
DEFAULT_USER = "system:serviceaccount:reflex:reflex"
WATCH_MAX_SECONDS = 1800
AGG_CTYPE = "application/json;g=apidiscovery.k8s.io;v=v2;" \
            "as=APIGroupDiscoveryList"

RequestRecord = collections.namedtuple(
    "RequestRecord",
    "method path query content_type body status user headers raw_query")
RequestRecord.__doc__ = """One request the server saw. query: dict of the
last value of each parameter; raw_query: the undecoded query string; body:
bytes; status: the HTTP status answered (0 for a dropped connection);
user: the authenticated user name or None."""


class Fault:
    """An injected failure for requests whose method and path match.

    count: how many matching requests it hits (None: all); status: answer
    this code with a Status (429 TooManyRequests, 500 InternalError, 503
    ServiceUnavailable, others generic); retry_after: seconds for
    details.retryAfterSeconds and the Retry-After header; delay: sleep this
    long first (then answer normally unless status/drop is set); drop:
    close the connection without an answer."""

    def __init__(self, path, method=None, status=None, count=1,
                 retry_after=None, delay=0.0, drop=False, message=None):
        self.path_re = re.compile(path)
        self.method = method.upper() if method else None
        self.status = status
        self.count = count
        self.retry_after = retry_after
        self.delay = delay
        self.drop = drop
        self.message = message
        self.hits = 0

    def matches(self, method, target):
        if self.count is not None and self.hits >= self.count:
            return False
        if self.method and self.method != method:
            return False
        path = target.split("?", 1)[0]
        return (self.path_re.search(path) is not None or
                self.path_re.search(target) is not None)

    def error(self):
        code = self.status
        if code == 429:
            ra = self.retry_after if self.retry_after is not None else 1
            return k8sobj.too_many_requests(
                self.message or "Too many requests, please try again later.",
                ra)
        if code == 500:
            return k8sobj.internal_error(self.message or "injected fault")
        if code == 503:
            e = ApiError(503, "ServiceUnavailable", self.message or
                         "the server is currently unable to handle the "
                         "request", {})
            if self.retry_after:
                e.headers["Retry-After"] = str(self.retry_after)
            return e
        if code == 504:
            return ApiError(504, "Timeout", self.message or
                            "the server was unable to return a response in "
                            "the time allotted, but may still be processing "
                            "the request", {})
        return ApiError(code, "", self.message or f"injected {code}", {})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def finish_request(self, request, client_address):
        ctx = self.fake._ssl_ctx
        if ctx is not None:
            try:
                request.settimeout(10)
                request = ctx.wrap_socket(request, server_side=True)
                request.settimeout(None)
            except (OSError, ssl.SSLError):
                try:
                    request.close()
                except OSError:
                    pass
                return
        self.fake._track(request, True)
        try:
            self.RequestHandlerClass(request, client_address, self)
        finally:
            self.fake._track(request, False)

    def handle_error(self, request, client_address):
        pass


def _yaml(obj, ind=0):
    pad = " " * ind
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append(f"{pad}{k}:")
                out.append(_yaml(v, ind + 2))
            else:
                out.append(f"{pad}{k}: {_scalar(v)}")
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, (dict, list)) and v:
                sub = _yaml(v, ind + 2).split("\n")
                sub[0] = pad + "- " + sub[0][ind + 2:]
                out.append("\n".join(sub))
            else:
                out.append(f"{pad}- {_scalar(v)}")
    return "\n".join(out)


def _scalar(v):
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, dict):
        return "{}"
    if isinstance(v, list):
        return "[]"
    return json.dumps(str(v))


class FakeAPIServer:
    """A fake Kubernetes API server; see the module docstring and
    README.md. Thread-safe; all state is under store.lock."""

    def __init__(self, objects=None, fixture=None, port=0, tls=False,
                 token=DEFAULT_TOKEN, user=DEFAULT_USER, users=None,
                 deny=None, aggregated_discovery=True, version="v1.32.4",
                 seed=0, now=None, knobs=None, tick_interval=None,
                 strict_namespaces=False, client_cert=False,
                 controllers=None, history=2000):
        import random
        self.rng = random.Random(seed)
        self.clock = Clock()
        self.registry = Registry()
        self.store = Store(history=history)
        self.knobs = {}
        self.version = version
        self.aggregated_discovery = aggregated_discovery
        self.strict_namespaces = strict_namespaces
        self.tls = tls
        self.client_cert = client_cert
        self.tokens = {}
        if token:
            self.tokens[token] = user
        self.token = token
        self.user = user
        for t, u in (users or {}).items():
            self.tokens[t] = u
        self.denies = list(deny or [])
        self.faults = []
        self.requests = []
        self.api = Api(self)
        self.sim = Simulator(self)
        if controllers is not None:
            self.sim.enabled = set(controllers)
        self._port_wanted = port
        self._httpd = None
        self._thread = None
        self._ticker = None
        self._ticker_stop = threading.Event()
        self._tick_interval = tick_interval
        self._stopping = False
        self._ssl_ctx = None
        self._certdir = None
        self._conns = set()
        self._conns_lock = threading.Lock()
        self.ca_path = None
        self.client_cert_path = None
        self.client_key_path = None
        self.port = None
        converge = False
        for ns in ("default", "kube-system", "kube-public",
                   "kube-node-lease"):
            self.store.put("/namespaces", self.api.new_namespace(ns))
        if fixture is not None:
            from . import fixtures as _fx
            fx = _fx.load(fixture) if isinstance(fixture, str) else fixture
            if fx.get("now"):
                self.clock.set(fx["now"])
            self.knobs.update(copy.deepcopy(fx.get("knobs") or {}))
            self.load(fx.get("objects") or [])
            converge = fx.get("converge")
        if now is not None:
            self.clock.set(now)
        self.knobs.update(knobs or {})
        if objects:
            self.load(objects)
        if fixture is not None and converge:
            self.converge()
        self.sim.remember_gitops()

    # -- lifecycle -----------------------------------------------------------

    def start(self):
        """Binds 127.0.0.1:port (0: any free port) and serves. Returns
        self."""
        if self.tls:
            self._make_certs()
        self._httpd = _Server((LOOPBACK, self._port_wanted), _Handler)
        self._httpd.fake = self
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        name="fakek8s", daemon=True)
        self._thread.start()
        if self._tick_interval:
            self.start_ticker(self._tick_interval)
        return self

    def stop(self):
        """Stops serving, ends watches, closes connections, removes the
        generated certificates. Idempotent."""
        self.stop_ticker()
        self._stopping = True
        with self.store.cond:
            self.store.cond.notify_all()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        with self._conns_lock:
            for c in list(self._conns):
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if self._certdir:
            shutil.rmtree(self._certdir, ignore_errors=True)
            self._certdir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def _track(self, conn, add):
        with self._conns_lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    @property
    def url(self):
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{LOOPBACK}:{self.port}"

    # -- TLS and kubeconfig ---------------------------------------------------

    def _make_certs(self):
        d = tempfile.mkdtemp(prefix="fakek8s-tls-")
        self._certdir = d

        def run(*argv):
            r = subprocess.run(["openssl", *argv], cwd=d,
                               capture_output=True, text=True, timeout=60,
                               stdin=subprocess.DEVNULL)
            if r.returncode != 0:
                raise RuntimeError(f"openssl {' '.join(argv)} failed: "
                                   f"{r.stderr.strip()}")
        with open(os.path.join(d, "server.ext"), "w") as f:
            f.write("basicConstraints=CA:FALSE\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth\n"
                    "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        with open(os.path.join(d, "client.ext"), "w") as f:
            f.write("basicConstraints=CA:FALSE\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=clientAuth\n")
        run("ecparam", "-name", "prime256v1", "-genkey", "-noout",
            "-out", "ca.key")
        run("req", "-x509", "-new", "-key", "ca.key", "-days", "2",
            "-subj", "/CN=fakek8s-ca", "-out", "ca.crt",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        for who, subj in (("server", "/CN=127.0.0.1"),
                          ("client", f"/O=system:masters/CN={self.user}")):
            run("ecparam", "-name", "prime256v1", "-genkey", "-noout",
                "-out", f"{who}.key")
            run("req", "-new", "-key", f"{who}.key", "-subj", subj,
                "-out", f"{who}.csr")
            run("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.crt",
                "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
                "-extfile", f"{who}.ext", "-out", f"{who}.crt")
        self.ca_path = os.path.join(d, "ca.crt")
        self.client_cert_path = os.path.join(d, "client.crt")
        self.client_key_path = os.path.join(d, "client.key")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(d, "server.crt"),
                            os.path.join(d, "server.key"))
        if self.client_cert:
            ctx.load_verify_locations(self.ca_path)
            ctx.verify_mode = ssl.CERT_OPTIONAL
        self._ssl_ctx = ctx

    def kubeconfig(self, namespace="default", token=None, insecure=False,
                   embed_ca=False, use_client_cert=False, no_auth=False):
        """The kubeconfig for this server as a dict (see
        write_kubeconfig)."""
        cluster = {"server": self.url}
        if self.tls:
            if insecure:
                cluster["insecure-skip-tls-verify"] = True
            elif embed_ca:
                with open(self.ca_path, "rb") as f:
                    cluster["certificate-authority-data"] = \
                        base64.b64encode(f.read()).decode()
            else:
                cluster["certificate-authority"] = self.ca_path
        user = {}
        if use_client_cert:
            user["client-certificate"] = self.client_cert_path
            user["client-key"] = self.client_key_path
        elif not no_auth:
            tok = token if token is not None else self.token
            if tok:
                user["token"] = tok
        return {"apiVersion": "v1", "kind": "Config",
                "clusters": [{"name": "fakek8s", "cluster": cluster}],
                "users": [{"name": "fakek8s-user", "user": user}],
                "contexts": [{"name": "fakek8s",
                              "context": {"cluster": "fakek8s",
                                          "user": "fakek8s-user",
                                          "namespace": namespace}}],
                "current-context": "fakek8s", "preferences": {}}

    def write_kubeconfig(self, path, namespace="default", token=None,
                         insecure=False, embed_ca=False,
                         use_client_cert=False, no_auth=False):
        """Writes a kubeconfig (block YAML) for this server to `path`:
        server URL, CA file (or -data, or insecure-skip-tls-verify), the
        token (default: the server's token; no_auth: none) or the
        generated client certificate. Returns path."""
        text = _yaml(self.kubeconfig(namespace, token, insecure, embed_ca,
                                     use_client_cert, no_auth)) + "\n"
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)
        return path

    def write_incluster(self, directory, namespace="default", token=None):
        """Writes token, ca.crt (TLS only) and namespace as a pod's
        service-account directory has them; returns the environment
        (KUBERNETES_SERVICE_HOST/PORT, POD_NAMESPACE) to go with it."""
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "token"), "w") as f:
            f.write(token if token is not None else (self.token or ""))
        with open(os.path.join(directory, "namespace"), "w") as f:
            f.write(namespace)
        if self.tls:
            shutil.copy(self.ca_path, os.path.join(directory, "ca.crt"))
        return {"KUBERNETES_SERVICE_HOST": LOOPBACK,
                "KUBERNETES_SERVICE_PORT": str(self.port),
                "POD_NAMESPACE": namespace}

    # -- simulator -----------------------------------------------------------

    def tick(self, n=1):
        """Runs every enabled controller once, n times."""
        for _ in range(n):
            self.sim.tick()

    def converge(self, max_ticks=100):
        """Ticks until a tick changes nothing (returns the ticks used), or
        raises RuntimeError after max_ticks."""
        for i in range(1, max_ticks + 1):
            before = self.store.current_rv()
            self.sim.tick()
            if self.store.current_rv() == before:
                return i
        raise RuntimeError(f"no convergence after {max_ticks} ticks")

    def start_ticker(self, interval=0.2):
        """Ticks in a background thread every `interval` seconds."""
        self.stop_ticker()
        self._ticker_stop = threading.Event()
        stop = self._ticker_stop

        def loop():
            while not stop.wait(interval):
                try:
                    self.sim.tick()
                except Exception as e:  # noqa: BLE001 - keep ticking
                    print(f"fakek8s: tick failed: {e!r}", flush=True)
        self._ticker = threading.Thread(target=loop, name="fakek8s-tick",
                                        daemon=True)
        self._ticker.start()

    def stop_ticker(self):
        if self._ticker is not None:
            self._ticker_stop.set()
            self._ticker.join(5)
            self._ticker = None

    def enable(self, *names):
        self.sim.enabled |= set(names)

    def disable(self, *names):
        """Switches controllers off (names from controllers.CONTROLLERS)."""
        for n in names:
            if n not in CONTROLLERS:
                raise ValueError(f"unknown controller {n!r}")
        self.sim.enabled -= set(names)

    # -- status helpers used by api and controllers ---------------------------

    @staticmethod
    def pod_ready(pod):
        for c in (pod.get("status") or {}).get("conditions") or []:
            if c.get("type") == "Ready":
                return c.get("status") == "True"
        return False

    def note_pod_terminating(self, pod):
        self.sim.mark_terminating(pod)

    def set_condition(self, status, ctype, cstatus, reason, message,
                      observed=None):
        """metav1.Condition style (PDB): observedGeneration included."""
        conds = status.setdefault("conditions", [])
        now = k8sobj.rfc3339(self.clock.now())
        for c in conds:
            if c.get("type") == ctype:
                if c.get("status") != cstatus:
                    c["lastTransitionTime"] = now
                c["status"] = cstatus
                c["reason"] = reason
                c["message"] = message
                if observed is not None:
                    c["observedGeneration"] = observed
                return
        c = {"type": ctype, "status": cstatus}
        if observed is not None:
            c["observedGeneration"] = observed
        c.update({"lastTransitionTime": now, "reason": reason,
                  "message": message})
        conds.append(c)

    @staticmethod
    def set_condition_list(conds, ctype, cstatus, reason, message, now):
        """Deployment/HPA style conditions (Deployment ones also carry
        lastUpdateTime)."""
        upd = ctype in ("Available", "Progressing", "ReplicaFailure")
        for c in conds:
            if c.get("type") == ctype:
                if c.get("status") == cstatus and c.get("reason") == \
                        reason and c.get("message") == message:
                    return
                if c.get("status") != cstatus:
                    c["lastTransitionTime"] = now
                if upd:
                    c["lastUpdateTime"] = now
                c["status"] = cstatus
                c["reason"] = reason
                c["message"] = message
                order = ["type", "status", "lastUpdateTime",
                         "lastTransitionTime", "reason", "message"]
                c.update(k8sobj.ordered(dict(c), order))
                fixed = k8sobj.ordered(dict(c), order)
                c.clear()
                c.update(fixed)
                return
        c = {"type": ctype, "status": cstatus}
        if upd:
            c["lastUpdateTime"] = now
        c.update({"lastTransitionTime": now, "reason": reason,
                  "message": message})
        conds.append(c)

    # -- store access for tests -----------------------------------------------

    def resource(self, name):
        """A ResourceType from `deployments`, `apps/deployments`, `deploy`,
        `Deployment`, `pods/eviction` is not a resource."""
        group = None
        if "/" in name:
            group, name = name.split("/", 1)
        low = name.lower()
        for r in self.registry.resources:
            if group is not None and r.group != group:
                continue
            if low in (r.plural, r.singular, r.kind.lower()) or \
                    low in r.short_names:
                if group is None and r.group in ("metrics.k8s.io",
                                                 "events.k8s.io"):
                    continue
                return r
        raise KeyError(f"unknown resource {name!r}")

    def get(self, resource, namespace, name):
        """The object as a client would GET it (with kind/apiVersion), or
        None."""
        res = self.resource(resource)
        with self.store.lock:
            o = self.api.get_obj(res, namespace, name)
            return self.api.external(res, o) if o is not None else None

    def list(self, resource, namespace=None, label_selector=None,
             field_selector=None):
        """Objects as a client would see them (with kind/apiVersion),
        sorted by namespace/name."""
        res = self.resource(resource)
        q = {}
        if label_selector:
            q["labelSelector"] = label_selector
        if field_selector:
            q["fieldSelector"] = field_selector
        with self.store.lock:
            lst = self.api.list(res, namespace, res.versions[0], q)
        return [self.api.external(res, o) for o in lst["items"]]

    def put_object(self, obj):
        """Creates or replaces `obj` directly (no admission; status kept,
        resourceVersion bumped). Returns the stored object."""
        return self.load([obj])[0]

    def update_object(self, resource, namespace, name, fn):
        """Calls fn(obj) on a copy of the stored object and stores the
        result (fn may return a new dict or modify in place); no
        admission, no generation bump. Returns the stored object."""
        res = self.resource(resource)
        with self.store.lock:
            o = self.api.require(res, namespace, name)
            r = fn(o)
            o = r if r is not None else o
            return self.store.put(self.api.storage_key(res),
                                  k8sobj.order_object(o))

    def delete_object(self, resource, namespace, name):
        """Removes an object at once (no grace period, no finalizers)."""
        res = self.resource(resource)
        return self.store.remove(self.api.storage_key(res),
                                 namespace if res.namespaced else "", name)

    def load(self, objects):
        """Loads objects as they are (fixtures): status, uid,
        creationTimestamp, deletionTimestamp and generation are kept if
        given; defaults are applied; ownerReferences may name their owner
        by kind and name only (uid and apiVersion are filled in).
        Returns the stored objects."""
        out = []
        with self.store.lock:
            for obj in objects:
                obj = copy.deepcopy(obj)
                res = self.registry.by_kind(obj.get("apiVersion", ""),
                                            obj.get("kind", ""))
                if res is None:
                    raise ValueError(f"unknown kind {obj.get('apiVersion')}"
                                     f" {obj.get('kind')}")
                obj.pop("kind", None)
                obj.pop("apiVersion", None)
                obj = self.api.to_storage(res, obj)
                md = obj.setdefault("metadata", {})
                if res.namespaced:
                    md.setdefault("namespace", "default")
                    self.api.ensure_namespace(md["namespace"])
                old = self.api.get_obj(res, md.get("namespace"), md["name"])
                if old is not None:
                    md.setdefault("uid", old["metadata"]["uid"])
                    md.setdefault("creationTimestamp",
                                  old["metadata"]["creationTimestamp"])
                md.pop("resourceVersion", None)
                obj = self.api.prepare_create(res, obj, keep_status=True)
                if res.key == "/pods" and md.get("deletionTimestamp"):
                    pass
                out.append((res, self.store.put(self.api.storage_key(res),
                                                obj)))
            fixed = []
            for res, o in out:
                refs = o["metadata"].get("ownerReferences") or []
                changed = False
                for r in refs:
                    if r.get("uid"):
                        continue
                    ores = self.registry.by_kind(
                        r.get("apiVersion") or self._api_version_of(
                            r.get("kind")), r.get("kind"))
                    owner = ores and self.api.get_obj(
                        ores, o["metadata"].get("namespace"), r.get("name"))
                    if owner is None:
                        raise ValueError(f"owner {r.get('kind')} "
                                         f"{r.get('name')} of "
                                         f"{o['metadata']['name']} not "
                                         "loaded")
                    r["apiVersion"] = ores.api_version()
                    r["uid"] = owner["metadata"]["uid"]
                    r.setdefault("controller", True)
                    r.setdefault("blockOwnerDeletion", True)
                    k8s_order = ["apiVersion", "kind", "name", "uid",
                                 "controller", "blockOwnerDeletion"]
                    r2 = k8sobj.ordered(dict(r), k8s_order)
                    r.clear()
                    r.update(r2)
                    changed = True
                if changed:
                    o = self.store.put(self.api.storage_key(res), o)
                fixed.append(self.api.external(res, o))
        return fixed

    def _api_version_of(self, kind):
        for r in self.registry.resources:
            if r.kind == kind and r.group not in ("metrics.k8s.io",):
                return r.api_version()
        return ""

    def compact(self):
        """Forgets the watch history (watches from older RVs get 410)."""
        self.store.compact()

    # -- faults, auth rules, request log --------------------------------------

    def inject(self, path, method=None, status=None, count=1,
               retry_after=None, delay=0.0, drop=False, message=None):
        """Adds a Fault (see Fault) for requests whose path, or path plus
        `?query`, the regex `path` is found in (re.search).
        Returns it (its .hits counts matches)."""
        f = Fault(path, method, status, count, retry_after, delay, drop,
                  message)
        with self.store.lock:
            self.faults.append(f)
        return f

    def clear_faults(self):
        with self.store.lock:
            self.faults.clear()

    def deny(self, verb=None, resource=None, group=None, namespace=None,
             name=None, user=None):
        """Adds an RBAC-style deny rule: a request whose attributes all
        match (None = any) gets 403 Forbidden with the API server's
        message. resource may name a subresource: "pods/eviction"."""
        with self.store.lock:
            self.denies.append({"verb": verb, "resource": resource,
                                "group": group, "namespace": namespace,
                                "name": name, "user": user})

    def clear_denies(self):
        with self.store.lock:
            self.denies.clear()

    def add_token(self, token, user):
        with self.store.lock:
            self.tokens[token] = user

    def revoke_token(self, token):
        with self.store.lock:
            self.tokens.pop(token, None)

    def requests_matching(self, method=None, path=None):
        """Recorded requests, filtered by method and a path regex."""
        with self.store.lock:
            out = list(self.requests)
        if method:
            out = [r for r in out if r.method == method.upper()]
        if path:
            rx = re.compile(path)
            out = [r for r in out if rx.search(r.path)]
        return out

    def clear_requests(self):
        with self.store.lock:
            self.requests.clear()

    def _record(self, rec):
        with self.store.lock:
            self.requests.append(rec)
            if len(self.requests) > 20000:
                del self.requests[:10000]


# ---------------------------------------------------------------------------
# HTTP

_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch",
          "DELETE": "delete"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fakek8s"
    sys_version = ""

    def log_message(self, fmt, *args):
        pass

    @property
    def fake(self):
        return self.server.fake

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_PATCH(self):
        self._handle("PATCH")

    def do_DELETE(self):
        self._handle("DELETE")

    def do_HEAD(self):
        self._handle("HEAD")

    def do_OPTIONS(self):
        self._handle("OPTIONS")

    # -- reading ------------------------------------------------------------

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            data = b""
            while True:
                line = self.rfile.readline(100)
                try:
                    n = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise ApiError(400, "BadRequest", "bad chunked body")
                if n == 0:
                    while self.rfile.readline(1000) not in (b"\r\n", b"\n",
                                                            b""):
                        pass
                    return data
                if len(data) + n > BODY_MAX:
                    raise ApiError(413, "RequestEntityTooLarge",
                                   "Request entity too large: limit is "
                                   f"{BODY_MAX}")
                data += self.rfile.read(n)
                self.rfile.readline(10)
        cl = self.headers.get("Content-Length")
        if cl is None:
            return b""
        try:
            n = int(cl)
        except ValueError:
            raise ApiError(400, "BadRequest", "bad Content-Length")
        if n < 0:
            raise ApiError(400, "BadRequest", "bad Content-Length")
        if n > BODY_MAX:
            self.close_connection = True
            raise ApiError(413, "RequestEntityTooLarge",
                           f"Request entity too large: limit is {BODY_MAX}")
        return self.rfile.read(n)

    # -- writing ------------------------------------------------------------

    def _headers_common(self):
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("X-Kubernetes-Pf-Flowschema-Uid",
                         "00000000-0000-0000-0000-000000000001")
        self.send_header("X-Kubernetes-Pf-Prioritylevel-Uid",
                         "00000000-0000-0000-0000-000000000002")

    def _send(self, code, body, ctype="application/json", headers=None):
        if isinstance(body, (dict, list)):
            body = (json.dumps(body, separators=(",", ":")) + "\n").encode()
        elif isinstance(body, str):
            body = body.encode()
        self._status = code
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self._headers_common()
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_error(self, err):
        self._send(err.code, err.status(), headers=err.headers)

    def _drop(self):
        self._status = 0
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- the request --------------------------------------------------------

    def _handle(self, method):
        self._status = 0
        self._recorded = False
        self._user = None
        fake = self.fake
        u = urllib.parse.urlsplit(self.path)
        path = u.path
        raw_query = u.query
        query = {k: v[-1] for k, v in
                 urllib.parse.parse_qs(raw_query,
                                       keep_blank_values=True).items()}
        ctype = self.headers.get("Content-Type") or ""
        body = b""
        user = None
        try:
            try:
                body = self._read_body()
            except ApiError as e:
                self._send_error(e)
                return
            target = path + (("?" + raw_query) if raw_query else "")
            fault = None
            with fake.store.lock:
                for f in fake.faults:
                    if f.matches(method, target):
                        f.hits += 1
                        fault = f
                        break
            if fault is not None:
                if fault.delay:
                    time.sleep(fault.delay)
                if fault.drop:
                    self._drop()
                    return
                if fault.status:
                    self._send_error(fault.error())
                    return
            user = self._authenticate()
            if user is None:
                self._send_error(ApiError(401, "Unauthorized",
                                          "Unauthorized"))
                return
            self._user = user
            self._route(method, path, query, ctype, body, user)
        except ApiError as e:
            self._send_error(e)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # noqa: BLE001 - a bug here is a 500
            import traceback
            traceback.print_exc()
            try:
                self._send_error(k8sobj.internal_error(repr(e)))
            except OSError:
                pass
        finally:
            if not self._recorded:
                fake._record(RequestRecord(
                    method, path, query, ctype, body, self._status, user,
                    {k: v for k, v in self.headers.items()}, raw_query))

    def _authenticate(self):
        """The user name, or None (401)."""
        fake = self.fake
        if fake.token is None and not fake.tokens and not fake.client_cert:
            return "system:anonymous"
        auth = (self.headers.get("Authorization") or "").strip()
        scheme, _, tok = auth.partition(" ")
        if scheme.lower() == "bearer" and tok.strip():
            tok = tok.strip()
            with fake.store.lock:
                return fake.tokens.get(tok)
        if fake.client_cert and isinstance(self.connection, ssl.SSLSocket):
            cert = self.connection.getpeercert()
            for rdn in (cert or {}).get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        return v
        return None

    def _authorize(self, user, verb, group, resource, sub, ns, name):
        """Raises 403 Forbidden when a deny rule matches."""
        fake = self.fake
        full = resource + ("/" + sub if sub else "")
        with fake.store.lock:
            rules = list(fake.denies)
        for rule in rules:
            r = rule.get("resource")
            if r is not None and r != full:
                continue
            if rule.get("verb") not in (None, verb):
                continue
            if rule.get("group") not in (None, group):
                continue
            if rule.get("namespace") not in (None, ns):
                continue
            if rule.get("name") not in (None, name):
                continue
            if rule.get("user") not in (None, user):
                continue
            qual = f"{resource}.{group}" if group else resource
            if ns:
                why = (f'User "{user}" cannot {verb} resource "{full}" in '
                       f'API group "{group}" in the namespace "{ns}"')
            else:
                why = (f'User "{user}" cannot {verb} resource "{full}" in '
                       f'API group "{group}" at the cluster scope')
            raise k8sobj.forbidden(qual, group, resource, name, why)

    def _route(self, method, path, query, ctype, body, user):
        fake = self.fake
        accept = self.headers.get("Accept") or ""
        if path in ("/healthz", "/livez", "/readyz"):
            self._send(200, "ok", "text/plain; charset=utf-8")
            return
        if path == "/version":
            minor = fake.version.lstrip("v").split(".")[1]
            self._send(200, {
                "major": "1", "minor": minor, "gitVersion": fake.version,
                "gitCommit": "0000000000000000000000000000000000000000",
                "gitTreeState": "clean",
                "buildDate": "2025-04-22T16:03:01Z",
                "goVersion": "go1.23.8", "compiler": "gc",
                "platform": "linux/amd64"})
            return
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["openapi", "v3"]:
            from . import openapi
            if len(parts) == 2:
                self._send(200, openapi.index(fake.registry, fake.version))
                return
            rest = parts[2:]
            doc = None
            if rest[0] == "api" and len(rest) == 2:
                doc = openapi.document(fake.registry, "", rest[1],
                                       fake.version)
            elif rest[0] == "apis" and len(rest) == 3:
                doc = openapi.document(fake.registry, rest[1], rest[2],
                                       fake.version)
            if doc is None:
                raise self._not_found_path()
            self._send(200, doc)
            return
        if not parts or parts[0] not in ("api", "apis"):
            self._send(404, "404 page not found\n",
                       "text/plain; charset=utf-8",
                       {"X-Content-Type-Options": "nosniff"})
            return
        reg = fake.registry
        metrics = fake.knobs.get("metrics", "available")
        if parts[0] == "api":
            if len(parts) == 1:
                if fake.aggregated_discovery and "apidiscovery.k8s.io" in \
                        accept:
                    self._send(200, reg.aggregated(legacy=True), AGG_CTYPE)
                    return
                self._send(200, {"kind": "APIVersions", "versions": ["v1"],
                                 "serverAddressByClientCIDRs": [{
                                     "clientCIDR": "0.0.0.0/0",
                                     "serverAddress":
                                         f"{LOOPBACK}:{fake.port}"}]})
                return
            if parts[1] != "v1":
                raise self._not_found_path()
            if len(parts) == 2:
                self._send(200, reg.api_resource_list("", "v1"))
                return
            group, version, rest = "", "v1", parts[2:]
        else:
            if len(parts) == 1:
                if fake.aggregated_discovery and "apidiscovery.k8s.io" in \
                        accept:
                    doc = reg.aggregated(legacy=False)
                    if metrics == "absent":
                        doc["items"] = [i for i in doc["items"] if
                                        i["metadata"].get("name") !=
                                        "metrics.k8s.io"]
                    self._send(200, doc, AGG_CTYPE)
                    return
                doc = reg.api_group_list()
                if metrics == "absent":
                    doc["groups"] = [g for g in doc["groups"]
                                     if g["name"] != "metrics.k8s.io"]
                self._send(200, doc)
                return
            group = parts[1]
            if group == "metrics.k8s.io":
                if metrics == "absent":
                    raise self._not_found_path()
                if metrics == "unavailable":
                    raise ApiError(503, "ServiceUnavailable",
                                   "the server is currently unable to "
                                   "handle the request", {})
            gvs = dict(reg.group_versions())
            if group not in gvs:
                raise self._not_found_path()
            if len(parts) == 2:
                self._send(200, {"kind": "APIGroup", "apiVersion": "v1",
                                 **reg.api_group(group, gvs[group])})
                return
            version = parts[2]
            if version not in gvs[group]:
                raise self._not_found_path()
            if len(parts) == 3:
                self._send(200, reg.api_resource_list(group, version))
                return
            rest = parts[3:]
        ns = None
        if rest[0] == "namespaces" and len(rest) >= 3 and not (
                group == "" and rest[2] in ("status", "finalize") and
                len(rest) == 3):
            ns = rest[1]
            rest = rest[2:]
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if len(rest) > 3:
            raise self._not_found_path()
        res = reg.lookup(group, version, plural)
        if res is None or (ns is not None and not res.namespaced):
            raise self._not_found_path()
        if sub is not None and sub not in res.subresources:
            raise self._not_found_path()
        watch = query.get("watch") in ("true", "1")
        if method == "GET":
            verb = "get" if name and not watch else \
                ("watch" if watch else "list")
        elif method == "DELETE" and not name:
            verb = "deletecollection"
        elif method in _VERBS:
            verb = _VERBS[method]
        else:
            raise ApiError(405, "MethodNotAllowed",
                           f"the server does not allow this method on the "
                           f"requested resource", {})
        self._authorize(user, verb, group, plural, sub, ns or "", name or "")
        if method in ("PUT", "PATCH") and not name:
            raise ApiError(405, "MethodNotAllowed",
                           "the server does not allow this method on the "
                           "requested resource", {})
        if res.namespaced and ns is None and name is not None:
            raise self._not_found_path()
        if verb not in (res.subresources[sub].verbs if sub else res.verbs):
            raise ApiError(405, "MethodNotAllowed",
                           "the server does not allow this method on the "
                           "requested resource", {})
        if res.group == "metrics.k8s.io":
            self._metrics(res, ns, name, query, version)
            return
        if watch and method == "GET":
            self._watch(res, ns, name, query, version)
            return
        if method in ("POST", "PUT") and body:
            body = self._body_as_json(ctype, body)
        dry = query.get("dryRun") == "All"
        if query.get("dryRun") not in (None, "All"):
            raise ApiError(400, "BadRequest", f"Invalid dry run value: "
                           f"{query.get('dryRun')}")
        with fake.store.lock:
            reply = self._execute(res, method, ns, name, sub, query, ctype,
                                  body, version, accept, dry)
        self._send(*reply)

    def _execute(self, res, method, ns, name, sub, query, ctype, body,
                 version, accept, dry):
        """Runs one resource request under the store lock; returns the
        arguments of _send: (code, body[, content type])."""
        api = self.fake.api
        if sub == "log":
            return (200, api.pod_log(ns, name, query), "text/plain")
        if sub == "eviction":
            b = api.decode(res, body, "v1", "Eviction")
            return (201, api.evict(ns, name, b, version, query))
        if sub == "scale":
            if method == "GET":
                return (200, api.get_scale(res, ns, name))
            if method == "PUT":
                b = api.decode(res, body, "v1", "Scale")
                return (200, api.update_scale(res, ns, name, b,
                                              dry_run=dry))
            return api.patch(res, ns, name, ctype, body, version, query,
                             sub="scale", dry_run=dry)
        if method == "GET" and name:
            return self._maybe_table(res, api.get(res, ns, name, version),
                                     accept, query)
        if method == "GET":
            return self._maybe_table(res, api.list(res, ns, version, query),
                                     accept, query)
        if method == "POST":
            if name:
                raise ApiError(405, "MethodNotAllowed",
                               "the server does not allow this method on "
                               "the requested resource", {})
            b = api.decode(res, body, version)
            return (201, api.create(res, ns or "", b, version, dry_run=dry))
        if method == "PUT":
            b = api.decode(res, body, version)
            return (200, api.update(res, ns or "", name, b, version,
                                    sub=sub, dry_run=dry))
        if method == "PATCH":
            return api.patch(res, ns or "", name, ctype, body, version,
                             query, sub=sub, dry_run=dry)
        opts = {}
        if body.strip():
            try:
                opts = json.loads(body)
            except ValueError as e:
                raise k8sobj.bad_request(str(e)) from None
            if not isinstance(opts, dict):
                raise k8sobj.bad_request("DeleteOptions must be an object")
        if "gracePeriodSeconds" in query:
            try:
                opts["gracePeriodSeconds"] = int(query["gracePeriodSeconds"])
            except ValueError:
                raise k8sobj.bad_request("gracePeriodSeconds must be an "
                                         "integer") from None
        if "propagationPolicy" in query:
            opts["propagationPolicy"] = query["propagationPolicy"]
        if name:
            return (200, api.delete(res, ns or "", name, opts, version,
                                    dry_run=dry))
        return (200, api.delete_collection(res, ns, query, opts, version,
                                           dry))

    def _body_as_json(self, ctype, body):
        """JSON bytes for a POST/PUT body (YAML converted); protobuf and
        other media types -> 415 (this fake speaks JSON and YAML only)."""
        mt = (ctype or "application/json").split(";")[0].strip().lower()
        if mt in ("application/json", ""):
            return body
        if mt == "application/yaml":
            from .miniyaml import YamlError, load
            try:
                return json.dumps(load(body.decode("utf-8"))).encode()
            except (YamlError, UnicodeDecodeError, ValueError) as e:
                raise k8sobj.bad_request(f"error decoding YAML: {e}") \
                    from None
        raise k8sobj.unsupported_media_type(["application/json",
                                             "application/yaml"])

    def _not_found_path(self):
        return ApiError(404, "NotFound",
                        "the server could not find the requested resource",
                        {})

    # -- Table output ---------------------------------------------------------

    def _maybe_table(self, res, obj, accept, query):
        if "as=Table" in accept and res.group != "metrics.k8s.io":
            from .table import to_table
            return (200, to_table(self.fake, res, obj, query),
                    "application/json;as=Table;v=v1;g=meta.k8s.io")
        return (200, obj)

    # -- metrics.k8s.io -------------------------------------------------------

    def _metrics(self, res, ns, name, query, version):
        from .metrics import metrics_items
        with self.fake.store.lock:
            items = metrics_items(self.fake, res, ns)
            label_reqs, field_reqs = self.fake.api.selectors(res, query)
        if name:
            for it in items:
                if it["metadata"]["name"] == name:
                    self._send(200, {"kind": res.kind,
                                     "apiVersion": res.api_version(), **it})
                    return
            raise k8sobj.not_found(res, name)
        items = [it for it in items
                 if match_requirements(label_reqs,
                                       it["metadata"].get("labels"))
                 and match_fields(field_reqs, it)]
        self._send(200, {"kind": res.list_kind,
                         "apiVersion": res.api_version(),
                         "metadata": {}, "items": items})

    # -- watch ----------------------------------------------------------------

    def _chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _event(self, etype, obj):
        table = getattr(self, "_watch_table", None)
        if table is not None and obj.get("kind") not in ("Status", None) \
                and etype != "BOOKMARK":
            from .table import to_table
            res, query = table
            t = to_table(self.fake, res, obj, query)
            if self._table_sent:
                t["columnDefinitions"] = []
            self._table_sent = True
            obj = t
        self._chunk((json.dumps({"type": etype, "object": obj},
                                separators=(",", ":")) + "\n").encode())

    def _client_gone(self):
        """True when the client has closed a watch connection."""
        import select
        try:
            r, _, _ = select.select([self.connection], [], [], 0)
            if not r:
                return False
            if isinstance(self.connection, ssl.SSLSocket):
                self.connection.setblocking(False)
                try:
                    data = self.connection.recv(1)
                except (ssl.SSLWantReadError, BlockingIOError):
                    return False
                finally:
                    self.connection.setblocking(True)
                return data == b""
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _watch(self, res, ns, name, query, version):
        fake = self.fake
        api = fake.api
        store = fake.store
        key = api.storage_key(res)
        label_reqs, field_reqs = api.selectors(res, query)
        if name:
            field_reqs = field_reqs + [("metadata.name", "=", name)]
        self._watch_table = None
        self._table_sent = False
        if "as=Table" in (self.headers.get("Accept") or ""):
            self._watch_table = (res, query)
        try:
            timeout = float(query.get("timeoutSeconds") or WATCH_MAX_SECONDS)
        except ValueError:
            raise k8sobj.bad_request("invalid timeoutSeconds") from None
        timeout = max(0.0, min(timeout, WATCH_MAX_SECONDS))
        rvp = query.get("resourceVersion")
        initial_events = query.get("sendInitialEvents") == "true"
        if initial_events and (query.get("resourceVersionMatch") !=
                               "NotOlderThan" or
                               query.get("allowWatchBookmarks") != "true"):
            raise api.invalid(res, "", [k8sobj.FieldError(
                "FieldValueForbidden", "sendInitialEvents", None,
                "sendInitialEvents requires setting resourceVersionMatch to"
                " NotOlderThan and allowWatchBookmarks to true")])

        def visible(o):
            if o is None:
                return False
            if res.namespaced and ns and o["metadata"].get("namespace") != ns:
                return False
            return match_requirements(label_reqs, o["metadata"].get(
                "labels")) and match_fields(field_reqs,
                                            api.from_storage(res, o))
        initial = []
        expired = None
        with store.lock:
            if rvp in (None, "", "0") or initial_events:
                items, cur = store.list(key, ns if res.namespaced else None)
                initial = [o for o in items if visible(o)]
                last = int(cur)
            else:
                try:
                    last = int(rvp)
                except ValueError:
                    raise k8sobj.bad_request(
                        f'resourceVersion: Invalid value: "{rvp}": must be '
                        "a non-negative integer") from None
                try:
                    store.events_after(key, last)
                except Expired as e:
                    expired = e
        self._status = 200
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self._headers_common()
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = True
        # A watch is logged when it starts (it may never end on its own).
        u = urllib.parse.urlsplit(self.path)
        fake._record(RequestRecord(
            "GET", u.path, query, self.headers.get("Content-Type") or "",
            b"", 200, self._user, {k: v for k, v in self.headers.items()},
            u.query))
        self._recorded = True
        try:
            if expired is not None:
                self._event("ERROR", {"kind": "Status", "apiVersion": "v1",
                                      "metadata": {}, "status": "Failure",
                                      "message": str(expired),
                                      "reason": "Expired", "code": 410})
                self._chunk(b"")
                return
            for o in initial:
                self._event("ADDED", api.external(res, o, version))
            if initial_events:
                self._event("BOOKMARK", {
                    "kind": res.kind, "apiVersion": res.api_version(version),
                    "metadata": {"resourceVersion": str(last),
                                 "annotations": {
                                     "k8s.io/initial-events-end": "true"}}})
            deadline = time.monotonic() + timeout
            while not fake._stopping:
                try:
                    with store.lock:
                        evs = store.events_after(key, last)
                        seen = store.rv
                except Expired as e:
                    self._event("ERROR", {
                        "kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Failure", "message": str(e),
                        "reason": "Expired", "code": 410})
                    break
                for ev in evs:
                    if res.namespaced and ns and ev.ns != ns:
                        continue
                    now_vis = visible(ev.obj)
                    was_vis = visible(ev.old)
                    out = api.external(res, ev.obj, version)
                    if ev.type == "DELETED":
                        if was_vis:
                            self._event("DELETED", out)
                    elif now_vis and was_vis:
                        self._event("MODIFIED", out)
                    elif now_vis:
                        self._event("ADDED", out)
                    elif was_vis:
                        self._event("DELETED", out)
                last = max(last, seen)
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if self._client_gone():
                    return
                with store.cond:
                    if store.rv == seen and not fake._stopping:
                        store.cond.wait(min(left, 0.5))
            self._chunk(b"")
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
