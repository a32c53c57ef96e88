#!/usr/bin/env python3
"""Run the gateway's rendered nginx configuration against fake upstreams and check its routing.

    routing_test.py MANIFESTS [--expect-notebooks] [--expect-pipelines]
                                # MANIFESTS: a file or a directory of rendered manifests (wharf render -o DIR)

With --expect-notebooks (the full bundle) the /notebook/ route must be there and is tested: the
profile's owner reaches their notebook, another user gets 403 even with a forged identity header.
Without it (lite) /notebook/ must not be proxied at all.

With --expect-pipelines (the full bundle, with the argo charm) /pipelines/ must be there: Argo's UI
behind the login, the prefix stripped (the Argo server runs with that base href), responses not
buffered (its event streams); without it /pipelines/ must not reach an Argo server.

The configuration is taken verbatim from the gateway ConfigMap; only what ties it to a cluster is
rewritten: the listen port, /tmp paths, the html root, the DNS resolver (a fake one answering
127.0.0.1 for every name, recording the names asked) and the upstream ports (fake Dex,
oauth2-proxy, model servers, the workspaces operator's owner check, a notebook and, when the
dashboard charm is related, the dashboard, on free local ports). With the dashboard, `/` must reach
it behind the login with the user oauth2-proxy named (never one the browser sent) and the page of
links moves to /links/. Needs nginx (apt-get install nginx-light)
and PyYAML.
"""
import http.client
import http.server
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

GOOD_COOKIE = "_wharf_session=valid"
GOOD_TOKEN = "Bearer good-token"
# Sessions of two users; alice owns the profile (namespace) "alice".
USERS = {"_wharf_session=alice": "alice@example.test", "_wharf_session=bob": "bob@example.test"}
OWNERS = {"alice": "alice@example.test"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_gateway_config(path):
    files = sorted(Path(path).rglob("*.y*ml")) if Path(path).is_dir() else [Path(path)]
    for f in files:
        for doc in yaml.safe_load_all(f.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "ConfigMap" and "nginx.conf" in doc.get("data", {}):
                return doc["data"]["nginx.conf"], doc["data"]["index.html"]
    sys.exit(f"FAIL: no ConfigMap with nginx.conf (the gateway's) in {path}")


class FakeDNS(threading.Thread):
    """Answers every A query with 127.0.0.1 and records the names asked."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.names = []

    def run(self):
        while True:
            data, addr = self.sock.recvfrom(512)
            qid, _flags, qd = struct.unpack(">HHH", data[:6])
            i, labels = 12, []
            while data[i]:
                labels.append(data[i + 1 : i + 1 + data[i]].decode())
                i += 1 + data[i]
            question = data[12 : i + 5]
            self.names.append(".".join(labels))
            answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 30, 4) + socket.inet_aton("127.0.0.1")
            self.sock.sendto(struct.pack(">HHHHHH", qid, 0x8180, 1, 1, 0, 0) + question + answer, addr)


def serve(handler_fn):
    """A local HTTP server whose GET/POST are handled by handler_fn(request) -> (status, headers, body)."""

    class H(http.server.BaseHTTPRequestHandler):
        def _do(self):
            status, headers, body = handler_fn(self)
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _do

        def log_message(self, *_):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def oauth2_proxy(req):
    if req.path.startswith("/oauth2/auth"):
        cookie = req.headers.get("Cookie") or ""
        if cookie in USERS:
            email = USERS[cookie]
            return 202, {"X-Auth-Request-Email": email, "X-Auth-Request-User": email.split("@")[0]}, b""
        if GOOD_COOKIE in cookie or req.headers.get("Authorization") == GOOD_TOKEN:
            return 202, {"X-Auth-Request-Email": "admin@example.test", "X-Auth-Request-User": "admin",
                         "X-Auth-Request-Groups": "ml,admins"}, b""
        return 401, {}, b""
    return 200, {}, f"oauth2:{req.path}|redirect={req.headers.get('X-Auth-Request-Redirect')}".encode()


def owner_check(req):
    """The workspaces operator's /authorize, by the same rule (charms/workspaces/src/authz.rs)."""
    uri = req.headers.get("X-Original-URI") or ""
    email = req.headers.get("X-Auth-Request-Email") or ""
    parts = uri.split("/")
    if req.path != "/authorize" or not email:
        return 401, {}, b""
    if len(parts) > 3 and parts[1] == "notebook" and OWNERS.get(parts[2]) == email:
        return 200, {}, b""
    return 403, {}, b""


NOTEBOOK_HITS = []
PIPELINES_HITS = []


def argo_server(req):
    PIPELINES_HITS.append(req.path)
    return 200, {}, f"argo:{req.path}|host={req.headers.get('Host')}".encode()


def notebook(req):
    NOTEBOOK_HITS.append(req.path)
    return 200, {}, f"notebook:{req.path}|email={req.headers.get('X-Auth-Request-Email')}|host={req.headers.get('Host')}".encode()


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    expect_notebooks = "--expect-notebooks" in sys.argv[1:]
    expect_pipelines = "--expect-pipelines" in sys.argv[1:]
    conf, html = load_gateway_config(args[0])
    work = Path(tempfile.mkdtemp(prefix="wharf-gateway-"))
    os.chmod(work, 0o777)
    (work / "html").mkdir()
    (work / "html/index.html").write_text(html)
    dns = FakeDNS()
    dns.start()
    dex_port = serve(lambda r: (200, {}, f"dex:{r.path}|host={r.headers.get('Host')}".encode()))
    auth_port = serve(oauth2_proxy)
    model_port = serve(lambda r: (200, {}, f"model:{r.path}|email={r.headers.get('X-Auth-Request-Email')}".encode()))
    authz_port = serve(owner_check)
    notebook_port = serve(notebook)
    dashboard_port = serve(lambda r: (200, {}, (
        f"dashboard:{r.path}|email={r.headers.get('X-Auth-Request-Email')}"
        f"|user={r.headers.get('X-Auth-Request-User')}|groups={r.headers.get('X-Auth-Request-Groups')}"
        f"|host={r.headers.get('Host')}").encode()))
    with_dashboard = "$dashboard_upstream" in conf
    argo_port = serve(argo_server)
    has_pipelines = "$pipelines_upstream" in conf
    if has_pipelines != expect_pipelines:
        sys.exit(f"FAIL: the gateway's nginx.conf {'has' if has_pipelines else 'has no'} /pipelines/ route "
                 f"({'un' if not expect_pipelines else ''}expected: --expect-pipelines is for bundles whose gateway "
                 "has the pipelines relation)")
    listen = free_port()
    second_pass = free_port()
    has_notebooks = "/notebook/" in conf
    if has_notebooks != expect_notebooks:
        sys.exit(f"FAIL: the gateway's nginx.conf {'has' if has_notebooks else 'has no'} /notebook/ route "
                 f"({'un' if not expect_notebooks else ''}expected: --expect-notebooks is for bundles whose gateway "
                 "has the notebooks relation)")

    # Only the cluster-bound parts change; the routing under test stays as rendered.
    conf = re.sub(r"listen 8080;", f"listen 127.0.0.1:{listen};", conf)
    conf = conf.replace("/tmp/", f"{work}/").replace("/etc/nginx/wharf/html", f"{work}/html")
    conf = re.sub(r"resolver \S+", f"resolver 127.0.0.1:{dns.port}", conf)
    conf = re.sub(r"(http://dex-auth[^:]*):\d+", rf"\1:{dex_port}", conf)
    conf = re.sub(r"(http://[a-z0-9.-]*gatekeeper[^:]*):\d+", rf"\1:{auth_port}", conf)
    conf = re.sub(r"(http://\$model_name\.[^:]+):\d+", rf"\1:{model_port}", conf)
    conf = re.sub(r"(set \$dashboard_upstream http://[^:]+):\d+", rf"\1:{dashboard_port}", conf)
    upstreams = [("dex", dex_port), ("oauth2-proxy", auth_port), ("model", model_port)]
    if has_notebooks:
        conf = conf.replace("127.0.0.1:8081", f"127.0.0.1:{second_pass}")
        conf = re.sub(r"(http://[a-z0-9.-]*-authz\.[^:]*):\d+", rf"\1:{authz_port}", conf)
        conf = re.sub(r"(http://\$nb_name\.[^:]+):\d+", rf"\1:{notebook_port}", conf)
        upstreams += [("second pass", second_pass), ("owner check", authz_port), ("notebook", notebook_port)]
    if with_dashboard:
        upstreams.append(("dashboard", dashboard_port))
    if has_pipelines:
        conf = re.sub(r"(set \$pipelines_upstream http://[^:]+):\d+", rf"\1:{argo_port}", conf)
        upstreams.append(("argo server", argo_port))
    for name, port in upstreams:
        assert f":{port}" in conf, f"could not point the {name} upstream of nginx.conf at the fake"
    (work / "nginx.conf").write_text(conf)

    subprocess.run(["nginx", "-t", "-q", "-c", str(work / "nginx.conf"), "-e", "/dev/stderr"], check=True)
    nginx = subprocess.Popen(["nginx", "-c", str(work / "nginx.conf"), "-e", "/dev/stderr", "-g", "daemon off;"])
    try:
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", listen), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        failures = run_cases(listen, dns, has_notebooks, with_dashboard, conf, has_pipelines)
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
    if failures:
        print("\n".join(failures))
        sys.exit(f"FAIL: {len(failures)} gateway routing case(s) failed")
    print("gateway routing: all cases passed")


def request(port, path, headers=None, method="GET"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path, headers=dict({"Host": "platform.test"}, **(headers or {})))
    r = c.getresponse()
    return r.status, dict(r.getheaders()), r.read().decode(errors="replace")


def run_cases(port, dns, has_notebooks, with_dashboard, conf, has_pipelines=False):
    cookie = {"Cookie": GOOD_COOKIE}
    if with_dashboard:
        front = [
            ("the dashboard gets the signed-in user from oauth2-proxy", "/", cookie, 200,
             lambda h, b: b == "dashboard:/|email=admin@example.test|user=admin|groups=ml,admins|host=platform.test"),
            ("identity headers a browser sends are replaced, never passed",
             "/training", dict(cookie, **{"X-Auth-Request-Email": "root@evil.test", "X-Auth-Request-Groups": "system:masters"}),
             200, lambda h, b: b.startswith("dashboard:/training|email=admin@example.test|") and "evil" not in b
             and "system:masters" not in b),
            ("forged identity headers without a session go to the login", "/training",
             {"X-Auth-Request-Email": "admin@example.test", "X-Auth-Request-User": "admin"}, 302,
             lambda h, b: h.get("Location", "").endswith("/oauth2/start?rd=/training")),
            ("the dashboard sees the public host with its port", "/models", dict(cookie, Host="platform.test:8443"), 200,
             lambda h, b: b.endswith("|host=platform.test:8443")),
            ("every other page goes to the dashboard", "/nope", cookie, 200, lambda h, b: b.startswith("dashboard:/nope|")),
            ("an invalid model name is not proxied to a model (the dashboard answers it)", "/models/Bad_Name/x",
             cookie, 200, lambda h, b: b.startswith("dashboard:/models/Bad_Name/x|")),
            ("the page of links is at /links/, behind the login", "/links/", cookie, 200,
             lambda h, b: "<html" in b and "admin@example.test" in b and 'href="/"' in b
             and h.get("Cache-Control") == "no-store"),
            ("/links without the slash is redirected", "/links", cookie, 301,
             lambda h, b: h.get("Location", "").endswith("/links/")),
            ("the page of links needs the login too", "/links/", {}, 302,
             lambda h, b: h.get("Location", "").endswith("/oauth2/start?rd=/links/")),
        ]
    else:
        front = [
            ("the dashboard shows the signed-in user", "/", cookie, 200,
             lambda h, b: "<html" in b and "admin@example.test" in b and h.get("Cache-Control") == "no-store"),
            ("an unknown page is a 404 behind the login", "/nope", cookie, 404, lambda h, b: True),
            ("an invalid model name is not proxied", "/models/Bad_Name/x", cookie, 404, lambda h, b: True),
        ]
    cases = front + [
        # (what, path, headers, expected status, check on (headers, body))
        ("probe needs no login", "/healthz", {}, 200, lambda h, b: b == "ok\n"),
        ("dex is reachable without login", "/dex/.well-known/openid-configuration", {}, 200,
         lambda h, b: b.startswith("dex:/dex/.well-known/openid-configuration") and "host=platform.test" in b),
        ("a browser without session goes to the login", "/", {}, 302,
         lambda h, b: h.get("Location", "").endswith("/oauth2/start?rd=/")),
        ("the login comes back to the page asked for", "/models/mnist/v2/health/ready", {}, 302,
         lambda h, b: h.get("Location", "").endswith("/oauth2/start?rd=/models/mnist/v2/health/ready")),
        ("an API client with a bad token gets 401", "/models/mnist/v2/health/ready", {"Authorization": "Bearer bad"}, 401,
         lambda h, b: True),
        ("oauth2-proxy's own paths are proxied", "/oauth2/start?rd=/x", {}, 200,
         lambda h, b: b.startswith("oauth2:/oauth2/start?rd=/x")),
        ("a model is proxied with its path, query and identity", "/models/mnist/v2/models/mnist/infer?x=1", cookie, 200,
         lambda h, b: b == "model:/v2/models/mnist/infer?x=1|email=admin@example.test"),
        ("a bearer token is accepted for models", "/models/iris-2/v1/models/iris-2:predict", {"Authorization": GOOD_TOKEN}, 200,
         lambda h, b: b.startswith("model:/v1/models/iris-2:predict")),
    ]
    alice, bob = {"Cookie": "_wharf_session=alice"}, {"Cookie": "_wharf_session=bob"}
    if has_notebooks:
        cases += [
            ("the owner reaches their notebook, path unchanged, with their identity", "/notebook/alice/nb/api/status?x=1", alice, 200,
             lambda h, b: b == "notebook:/notebook/alice/nb/api/status?x=1|email=alice@example.test|host=platform.test"),
            ("another user gets 403 on someone else's notebook", "/notebook/alice/nb/lab", bob, 403, lambda h, b: True),
            ("a forged identity header does not help", "/notebook/alice/nb/lab",
             dict(bob, **{"X-Auth-Request-Email": "alice@example.test"}), 403, lambda h, b: True),
            ("a namespace without a profile is nobody's", "/notebook/kube-system/nb/", alice, 403, lambda h, b: True),
            ("a notebook without login goes to the login and back", "/notebook/alice/nb/lab", {}, 302,
             lambda h, b: h.get("Location", "").endswith("/oauth2/start?rd=/notebook/alice/nb/lab")),
            ("a notebook path without its slash gets it", "/notebook/alice/nb", alice, 302,
             lambda h, b: h.get("Location", "").endswith("/notebook/alice/nb/")),
        ]
    else:
        cases += [
            ("without the notebooks relation /notebook/ is not proxied", "/notebook/alice/nb/lab", alice,
             200 if with_dashboard else 404,
             lambda h, b: b.startswith("dashboard:/notebook/") if with_dashboard else True),
        ]
    if has_pipelines:
        cases += [
            ("the pipelines UI is proxied behind the login, its prefix stripped", "/pipelines/workflows/alice?limit=5",
             cookie, 200, lambda h, b: b == "argo:/workflows/alice?limit=5|host=platform.test"),
            ("the pipelines UI's root is the Argo server's", "/pipelines/", cookie, 200,
             lambda h, b: b.startswith("argo:/|")),
            ("the pipelines API is proxied too", "/pipelines/api/v1/workflows/alice", cookie, 200,
             lambda h, b: b.startswith("argo:/api/v1/workflows/alice|")),
            ("a path that looks like a model under /pipelines/ stays Argo's", "/pipelines/models/mnist/x", cookie, 200,
             lambda h, b: b.startswith("argo:/models/mnist/x|")),
            ("the pipelines UI without a session goes to the login and back", "/pipelines/workflows", {}, 302,
             lambda h, b: h.get("Location", "").endswith("/oauth2/start?rd=/pipelines/workflows")),
            ("the pipelines API with a bad token gets 401", "/pipelines/api/v1/workflows/alice",
             {"Authorization": "Bearer bad"}, 401, lambda h, b: True),
            ("/pipelines without the slash is redirected", "/pipelines", cookie, 301,
             lambda h, b: h.get("Location", "").endswith("/pipelines/")),
        ]
    else:
        cases += [
            ("without the pipelines relation /pipelines/ reaches no Argo server", "/pipelines/", cookie,
             200 if with_dashboard else 404,
             lambda h, b: b.startswith("dashboard:/pipelines/") if with_dashboard else True),
        ]
    failures = []
    if has_pipelines:
        pipelines_location = conf.split("$pipelines_upstream")[0].rsplit("location", 1)[-1]
        if "proxy_buffering off;" not in pipelines_location:
            failures.append("FAIL the pipelines location buffers responses (Argo's event streams would stall)")
    # Server-sent events must reach the browser as they come, not when nginx's buffer fills.
    if with_dashboard:
        dashboard_location = conf.split("$dashboard_upstream")[0].rsplit("location", 1)[-1]
        if "proxy_buffering off;" not in dashboard_location:
            failures.append("FAIL the dashboard's location buffers responses (its event streams would stall)")
    for what, path, headers, want, check in cases:
        status, h, body = request(port, path, headers)
        ok = status == want and check(h, body)
        print(f"{'ok  ' if ok else 'FAIL'} {what}: GET {path} -> {status}")
        if not ok:
            failures.append(f"FAIL {what}: GET {path} -> {status} (want {want}), headers {h}, body {body[:300]!r}")
    if not any(n.startswith("mnist.") and ".svc." in n for n in dns.names):
        failures.append(f"FAIL model Service name: nginx never resolved mnist.<namespace>.svc.<domain> (asked: {dns.names})")
    if has_notebooks:
        if not any(n.startswith("nb.alice.svc.") for n in dns.names):
            failures.append(f"FAIL notebook Service name: nginx never resolved nb.alice.svc.<domain> (asked: {dns.names})")
        if NOTEBOOK_HITS != ["/notebook/alice/nb/api/status?x=1"]:
            failures.append(f"FAIL only the owner's request may reach the notebook; it saw {NOTEBOOK_HITS}")
    if has_pipelines:
        if not any(".svc." in n and "-server." in n for n in dns.names):
            failures.append(f"FAIL Argo server Service name: nginx never resolved <app>-server.<namespace>.svc (asked: {dns.names})")
        # Only logged-in requests reach it (the login-less and bad-token cases must not).
        if len(PIPELINES_HITS) != 4:
            failures.append(f"FAIL only the 4 logged-in requests may reach the Argo server; it saw {PIPELINES_HITS}")
    elif PIPELINES_HITS:
        failures.append(f"FAIL no request may reach an Argo server without the pipelines relation; it saw {PIPELINES_HITS}")
    return failures


if __name__ == "__main__":
    main()
