#!/usr/bin/env python3
"""Observe MLflow's basic-auth app (`mlflow server --app-name basic-auth`) on the wire.

Run with the separate venv that has `mlflow[auth]` at the version our tests pin:

    VENV/bin/python docs/reference/observe_mlflow_auth.py [SECTION ...]

Sections: auth users grants matrix search security client lastadmin nodefault (default: all, in that order).
It starts its own servers on free loopback ports (temp dirs, SQLite backend, --workers 1), drives
them with `requests` and with the official client, prints every exchange (method, path, user,
request fields, status, content-type, relevant headers, body) to stdout, and stops the servers.

Note on speed: basic-auth verifies a PBKDF2 hash on *every* request (no cache by default,
`auth_cache_ttl_seconds = 0`); on a loaded 2-core machine that is ~6 s/request. The servers
started here therefore use a config file that is the packaged basic_auth.ini plus
`auth_cache_ttl_seconds = 600` (semantics unchanged; only repeat logins get cheaper).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import requests

VENV_BIN = os.path.dirname(sys.executable)
ADMIN_PW = "adminpass-123456"
PW = "password-12345"  # 14 chars
SECRET = "observe-secret-key"

OUT = []


def log(*a):
    s = " ".join(str(x) for x in a)
    print(s, flush=True)


def free_port():
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p not in (5432, 5672):
            return p


class Server:
    def __init__(self, default_permission="READ", extra_args=(), extra_ini="", env_extra=None):
        self.dir = tempfile.mkdtemp(prefix="mlflow-auth-obs-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        ini = os.path.join(self.dir, "basic_auth.ini")
        with open(ini, "w") as f:
            f.write(
                "[mlflow]\n"
                f"default_permission = {default_permission}\n"
                f"database_uri = sqlite:///{self.dir}/basic_auth.db\n"
                "admin_username = admin\n"
                "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                "auth_cache_ttl_seconds = 600\n" + extra_ini
            )
        env = dict(os.environ)
        env.update(
            MLFLOW_AUTH_CONFIG_PATH=ini,
            MLFLOW_AUTH_ADMIN_PASSWORD=ADMIN_PW,
            MLFLOW_FLASK_SERVER_SECRET_KEY=SECRET,
        )
        env.update(env_extra or {})
        cmd = [
            os.path.join(VENV_BIN, "mlflow"), "server", "--app-name", "basic-auth",
            "--backend-store-uri", f"sqlite:///{self.dir}/mlflow.db",
            "--artifacts-destination", f"{self.dir}/artifacts",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1", *extra_args,
        ]
        log(f"\n### starting server: default_permission={default_permission} args={list(extra_args)} "
            f"port={self.port} dir={self.dir}")
        self.logf = open(os.path.join(self.dir, "server.log"), "w")
        self.proc = subprocess.Popen(cmd, cwd=self.dir, env=env, stdout=self.logf,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 240
        while time.time() < deadline:
            try:
                if requests.get(self.url + "/health", timeout=5).status_code == 200:
                    # the first authenticated request also warms things up
                    return
            except requests.RequestException:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("server exited: " + open(self.logf.name).read()[-3000:])
            time.sleep(2)
        raise RuntimeError("server did not start")

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        except Exception:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except Exception:
                pass
        self.logf.close()
        log(f"### stopped server on port {self.port}")


SHOW_HEADERS = (
    "content-type", "www-authenticate", "content-disposition", "x-content-type-options",
    "content-security-policy", "x-frame-options", "access-control-allow-origin",
    "access-control-allow-methods", "access-control-allow-headers", "access-control-allow-credentials",
    "vary", "cache-control", "set-cookie", "location", "referrer-policy",
    "strict-transport-security", "cross-origin-opener-policy",
)


class Caller:
    def __init__(self, server):
        self.s = server
        self.sess = requests.Session()

    def call(self, label, method, path, user=None, pw=None, json_body=None, params=None, data=None,
             headers=None, quiet_body=False, show_all_headers=False):
        h = dict(headers or {})
        auth = None
        if user is not None:
            auth = (user, pw if pw is not None else (ADMIN_PW if user == "admin" else PW))
        r = self.sess.request(method, self.s.url + path, auth=auth, json=json_body, params=params,
                              data=data, headers=h, timeout=120)
        body = r.text
        if len(body) > 700:
            body = body[:700] + f"...[{len(r.text)} chars]"
        hdrs = (dict(r.headers) if show_all_headers else
                {k: v for k, v in r.headers.items() if k.lower() in SHOW_HEADERS})
        req_desc = ""
        if params:
            req_desc += " ?" + json.dumps(params)
        if json_body is not None:
            req_desc += " json=" + json.dumps(json_body)
        if data is not None:
            req_desc += " data=" + repr(data)[:200]
        if h:
            req_desc += " headers=" + json.dumps(h)
        log(f"- [{label}] {method} {path} as={user}{req_desc}\n    -> {r.status_code} {hdrs}"
            + ("" if quiet_body else f"\n    body: {body.strip()}"))
        return r


# ---------------------------------------------------------------- helpers
def j(r):
    try:
        return r.json()
    except Exception:
        return None


def mkuser(c, name, pw=PW):
    return c.call("create user " + name, "POST", "/api/2.0/mlflow/users/create", "admin",
                  json_body={"username": name, "password": pw})


def grant(c, user, rtype, rid, perm, caller="admin", label=None):
    return c.call(label or f"grant {perm} {rtype}:{rid} to {user}", "POST",
                  "/api/3.0/mlflow/users/permissions/grant", caller,
                  json_body={"username": user, "resource_type": rtype, "resource_id": rid,
                             "permission": perm})


def getperm(c, user, rtype, rid, caller="admin", label=None):
    return c.call(label or f"get perm {user} {rtype}:{rid}", "GET",
                  "/api/3.0/mlflow/users/permissions/get", caller,
                  params={"username": user, "resource_type": rtype, "resource_id": rid})


# ---------------------------------------------------------------- sections
def sec_auth(c):
    log("\n## AUTH: authentication, 401s, bearer, case sensitivity, unprotected routes")
    p = "/api/2.0/mlflow/experiments/get"
    q = {"experiment_id": "0"}
    c.call("no credentials", "GET", p, params=q)
    c.call("admin ok", "GET", p, "admin", params=q)
    c.call("wrong password", "GET", p, "admin", "wrong-password-xx", params=q)
    c.call("unknown user", "GET", p, "nobody", "whatever-12345", params=q)
    c.call("upper-case username ADMIN", "GET", p, "ADMIN", ADMIN_PW, params=q)
    c.call("bearer token", "GET", p, headers={"Authorization": "Bearer abcdef"}, params=q)
    c.call("malformed basic", "GET", p, headers={"Authorization": "Basic !!!notbase64"}, params=q)
    c.call("basic with no colon", "GET", p, headers={"Authorization": "Basic YWRtaW4="}, params=q)
    c.call("legacy default admin pw password1234", "GET", p, "admin", "password1234", params=q)
    for path in ("/health", "/version", "/api/3.0/mlflow/server-info", "/", "/signup",
                 "/static-files/index.html", "/favicon.ico", "/metrics",
                 "/api/2.0/mlflow/users/current"):
        c.call("unauth " + path, "GET", path, quiet_body=path in ("/", "/static-files/index.html",
                                                                 "/signup"))
    c.call("POST no creds", "POST", "/api/2.0/mlflow/experiments/create", json_body={"name": "x"})
    c.call("unknown route no creds", "GET", "/api/2.0/mlflow/nope")
    c.call("unknown route admin", "GET", "/api/2.0/mlflow/nope", "admin")
    c.call("ajax-api no creds", "GET", "/ajax-api/2.0/mlflow/experiments/get", params=q)
    # case sensitivity of usernames at creation
    mkuser(c, "CaseUser")
    c.call("login as caseuser (lower)", "GET", "/api/2.0/mlflow/users/current", "caseuser")
    c.call("login as CaseUser", "GET", "/api/2.0/mlflow/users/current", "CaseUser")
    mkuser(c, "caseuser")


def sec_users(c):
    log("\n## USERS: user API validation")
    mkuser(c, "alice")
    mkuser(c, "bob")
    c.call("create short pw", "POST", "/api/2.0/mlflow/users/create", "admin",
           json_body={"username": "shorty", "password": "short"})
    c.call("create 11-char pw", "POST", "/api/2.0/mlflow/users/create", "admin",
           json_body={"username": "shorty", "password": "a" * 11})
    c.call("create 12-char pw", "POST", "/api/2.0/mlflow/users/create", "admin",
           json_body={"username": "twelve", "password": "a" * 12})
    c.call("create duplicate", "POST", "/api/2.0/mlflow/users/create", "admin",
           json_body={"username": "alice", "password": PW})
    c.call("create empty username", "POST", "/api/2.0/mlflow/users/create", "admin",
           json_body={"username": "", "password": PW})
    c.call("create missing password", "POST", "/api/2.0/mlflow/users/create", "admin",
           json_body={"username": "nopw"})
    c.call("create text/plain", "POST", "/api/2.0/mlflow/users/create", "admin",
           data=json.dumps({"username": "tp", "password": PW}), headers={"Content-Type": "text/plain"})
    c.call("create form", "POST", "/api/2.0/mlflow/users/create", "admin",
           data={"username": "fm", "password": PW})
    c.call("create as non-admin", "POST", "/api/2.0/mlflow/users/create", "alice",
           json_body={"username": "mallory", "password": PW})
    c.call("create via ajax-api", "POST", "/ajax-api/2.0/mlflow/users/create", "admin",
           json_body={"username": "ajaxuser", "password": PW})
    c.call("get user (admin)", "GET", "/api/2.0/mlflow/users/get", "admin", params={"username": "alice"})
    c.call("get self", "GET", "/api/2.0/mlflow/users/get", "alice", params={"username": "alice"})
    c.call("get other (non-admin)", "GET", "/api/2.0/mlflow/users/get", "alice", params={"username": "bob"})
    c.call("get unknown", "GET", "/api/2.0/mlflow/users/get", "admin", params={"username": "ghost"})
    c.call("get no param", "GET", "/api/2.0/mlflow/users/get", "admin")
    c.call("current (alice)", "GET", "/api/2.0/mlflow/users/current", "alice")
    c.call("current (admin)", "GET", "/api/2.0/mlflow/users/current", "admin")
    c.call("list users (admin)", "GET", "/api/2.0/mlflow/users/list", "admin")
    c.call("list users (alice)", "GET", "/api/2.0/mlflow/users/list", "alice")
    c.call("current permissions (alice)", "GET", "/api/3.0/mlflow/users/current/permissions", "alice")
    c.call("permissions/list alice (admin)", "GET", "/api/3.0/mlflow/users/permissions/list", "admin",
           params={"username": "alice"})
    c.call("permissions/list bob (alice)", "GET", "/api/3.0/mlflow/users/permissions/list", "alice",
           params={"username": "bob"})
    # passwords
    c.call("alice updates own pw w/o current", "PATCH", "/api/2.0/mlflow/users/update-password",
           "alice", json_body={"username": "alice", "password": "newpassword-123"})
    c.call("alice updates own pw wrong current", "PATCH", "/api/2.0/mlflow/users/update-password",
           "alice", json_body={"username": "alice", "password": "newpassword-123",
                               "current_password": "nope-nope-nope"})
    c.call("alice updates own pw same as current", "PATCH", "/api/2.0/mlflow/users/update-password",
           "alice", json_body={"username": "alice", "password": PW, "current_password": PW})
    c.call("alice updates own pw too short", "PATCH", "/api/2.0/mlflow/users/update-password",
           "alice", json_body={"username": "alice", "password": "short", "current_password": PW})
    c.call("alice updates own pw ok", "PATCH", "/api/2.0/mlflow/users/update-password",
           "alice", json_body={"username": "alice", "password": "newpassword-123", "current_password": PW})
    c.call("alice old pw", "GET", "/api/2.0/mlflow/users/current", "alice")
    c.call("alice new pw", "GET", "/api/2.0/mlflow/users/current", "alice", "newpassword-123")
    c.call("admin resets alice pw (no current)", "PATCH", "/api/2.0/mlflow/users/update-password",
           "admin", json_body={"username": "alice", "password": PW})
    c.call("alice updates bob pw", "PATCH", "/api/2.0/mlflow/users/update-password", "alice",
           json_body={"username": "bob", "password": "hacked-password-1", "current_password": PW})
    c.call("admin update pw unknown user", "PATCH", "/api/2.0/mlflow/users/update-password", "admin",
           json_body={"username": "ghost", "password": PW})
    c.call("update-password as POST", "POST", "/api/2.0/mlflow/users/update-password", "admin",
           json_body={"username": "alice", "password": PW})
    # admin flag
    c.call("alice makes self admin", "PATCH", "/api/2.0/mlflow/users/update-admin", "alice",
           json_body={"username": "alice", "is_admin": True})
    c.call("admin makes bob admin", "PATCH", "/api/2.0/mlflow/users/update-admin", "admin",
           json_body={"username": "bob", "is_admin": True})
    c.call("get bob", "GET", "/api/2.0/mlflow/users/get", "admin", params={"username": "bob"})
    c.call("update-admin string 'false'", "PATCH", "/api/2.0/mlflow/users/update-admin", "admin",
           json_body={"username": "bob", "is_admin": "false"})
    c.call("get bob", "GET", "/api/2.0/mlflow/users/get", "admin", params={"username": "bob"})
    c.call("update-admin false", "PATCH", "/api/2.0/mlflow/users/update-admin", "admin",
           json_body={"username": "bob", "is_admin": False})
    c.call("get bob", "GET", "/api/2.0/mlflow/users/get", "admin", params={"username": "bob"})
    c.call("update-admin unknown user", "PATCH", "/api/2.0/mlflow/users/update-admin", "admin",
           json_body={"username": "ghost", "is_admin": True})
    # deletion
    mkuser(c, "tmpuser")
    c.call("alice deletes tmpuser", "DELETE", "/api/2.0/mlflow/users/delete", "alice",
           json_body={"username": "tmpuser"})
    c.call("alice deletes self", "DELETE", "/api/2.0/mlflow/users/delete", "alice",
           json_body={"username": "alice"})
    c.call("admin deletes self", "DELETE", "/api/2.0/mlflow/users/delete", "admin",
           json_body={"username": "admin"})
    c.call("admin deletes unknown", "DELETE", "/api/2.0/mlflow/users/delete", "admin",
           json_body={"username": "ghost"})
    c.call("admin deletes tmpuser (query string)", "DELETE", "/api/2.0/mlflow/users/delete", "admin",
           params={"username": "tmpuser"})
    c.call("admin deletes tmpuser", "DELETE", "/api/2.0/mlflow/users/delete", "admin",
           json_body={"username": "tmpuser"})
    c.call("deleted user logs in", "GET", "/api/2.0/mlflow/users/current", "tmpuser")
    # signup UI
    c.call("GET /signup as admin", "GET", "/signup", "admin", quiet_body=True)
    c.call("GET /signup as alice", "GET", "/signup", "alice")
    c.call("POST create-ui without csrf", "POST", "/api/2.0/mlflow/users/create-ui", "admin",
           data={"username": "uiuser", "password": PW})
    r = c.call("GET /signup as admin (for csrf)", "GET", "/signup", "admin", quiet_body=True)
    import re
    m = re.search(r'name="csrf_token" value="([^"]+)"', r.text)
    if m:
        c.call("POST create-ui with csrf", "POST", "/api/2.0/mlflow/users/create-ui", "admin",
               data={"username": "uiuser", "password": PW, "csrf_token": m.group(1)})
        c.call("POST create-ui with csrf (dup)", "POST", "/api/2.0/mlflow/users/create-ui", "admin",
               data={"username": "uiuser", "password": PW, "csrf_token": m.group(1)})
    c.call("POST create-ui json", "POST", "/api/2.0/mlflow/users/create-ui", "admin",
           json_body={"username": "uiuser2", "password": PW})


def sec_lastadmin(c):
    log("\n## LASTADMIN: demoting / deleting the last admin (run last: it leaves the server without an admin)")
    # last admin: make admin2, admin2 deletes admin -> then admin2 is the only admin
    mkuser(c, "admin2")
    c.call("make admin2 admin", "PATCH", "/api/2.0/mlflow/users/update-admin", "admin",
           json_body={"username": "admin2", "is_admin": True})
    c.call("admin2 demotes admin", "PATCH", "/api/2.0/mlflow/users/update-admin", "admin2",
           json_body={"username": "admin", "is_admin": False})
    c.call("admin2 deletes (demoted) admin", "DELETE", "/api/2.0/mlflow/users/delete", "admin2",
           json_body={"username": "admin"})
    c.call("admin2 demotes self (last admin)", "PATCH", "/api/2.0/mlflow/users/update-admin", "admin2",
           json_body={"username": "admin2", "is_admin": False})
    c.call("admin2 still admin?", "GET", "/api/2.0/mlflow/users/current", "admin2")
    c.call("admin (demoted) lists users", "GET", "/api/2.0/mlflow/users/list", "admin")
    # try to restore (fails if no admin is left)
    c.call("re-promote admin via admin2", "PATCH", "/api/2.0/mlflow/users/update-admin", "admin2",
           json_body={"username": "admin", "is_admin": True})
    c.call("admin re-promote admin2", "PATCH", "/api/2.0/mlflow/users/update-admin", "admin",
           json_body={"username": "admin2", "is_admin": True})
    c.call("admin deletes admin2", "DELETE", "/api/2.0/mlflow/users/delete", "admin",
           json_body={"username": "admin2"})


def sec_grants(c):
    log("\n## GRANTS: permission API")
    mkuser(c, "gina")
    mkuser(c, "owner1")
    r = c.call("owner1 creates experiment", "POST", "/api/2.0/mlflow/experiments/create", "owner1",
               json_body={"name": "grant-exp"})
    eid = j(r)["experiment_id"]
    c.call("owner1 creates model", "POST", "/api/2.0/mlflow/registered-models/create", "owner1",
           json_body={"name": "grant-model"})
    getperm(c, "owner1", "experiment", eid, label="creator's permission on experiment")
    getperm(c, "owner1", "registered_model", "grant-model", label="creator's permission on model")
    c.call("owner1 permissions/list self", "GET", "/api/3.0/mlflow/users/permissions/list", "owner1",
           params={"username": "owner1"})
    getperm(c, "gina", "experiment", eid, label="no grant -> default")
    getperm(c, "gina", "experiment", "999999", label="unknown experiment")
    getperm(c, "gina", "registered_model", "no-such-model", label="unknown model")
    getperm(c, "gina", "experiment", "grant-exp", label="experiment by NAME")
    getperm(c, "ghost", "experiment", eid, label="unknown user")
    getperm(c, "gina", "bogus_type", eid, label="bad resource type")
    for perm in ("READ", "USE", "EDIT", "MANAGE", "DENY", "NO_PERMISSIONS", "read", "BOGUS"):
        r = grant(c, "gina", "experiment", eid, perm)
        if r.status_code == 200:
            getperm(c, "gina", "experiment", eid)
            grant(c, "gina", "experiment", eid, perm, label="duplicate grant " + perm)
            c.call("revoke", "POST", "/api/3.0/mlflow/users/permissions/revoke", "admin",
                   json_body={"username": "gina", "resource_type": "experiment", "resource_id": eid})
    c.call("revoke without grant", "POST", "/api/3.0/mlflow/users/permissions/revoke", "admin",
           json_body={"username": "gina", "resource_type": "experiment", "resource_id": eid})
    grant(c, "gina", "experiment", "grant-exp", "READ", label="grant by experiment NAME")
    grant(c, "gina", "experiment", "999999", "READ", label="grant on unknown experiment id")
    grant(c, "gina", "registered_model", "no-such-model", "READ", label="grant on unknown model")
    grant(c, "gina", "experiment", "*", "READ", label="wildcard experiment grant")
    getperm(c, "gina", "experiment", "0", label="after wildcard READ, experiment 0")
    c.call("revoke wildcard", "POST", "/api/3.0/mlflow/users/permissions/revoke", "admin",
           json_body={"username": "gina", "resource_type": "experiment", "resource_id": "*"})
    for rtype, rid in (("registered_model", "grant-model"), ("prompt", "grant-model"),
                       ("run", "*"), ("logged_model", "*"), ("registered_model_version", "*"),
                       ("workspace", "*"), ("scorer", "x"), ("run", "abc")):
        r = grant(c, "gina", rtype, rid, "EDIT" if rtype != "workspace" else "USE")
        if r.status_code == 200:
            c.call("revoke", "POST", "/api/3.0/mlflow/users/permissions/revoke", "admin",
                   json_body={"username": "gina", "resource_type": rtype, "resource_id": rid})
    grant(c, "ghost", "experiment", eid, "READ", label="grant to unknown user")
    c.call("grant missing field", "POST", "/api/3.0/mlflow/users/permissions/grant", "admin",
           json_body={"username": "gina", "resource_type": "experiment", "resource_id": eid})
    c.call("grant as GET", "GET", "/api/3.0/mlflow/users/permissions/grant", "admin",
           params={"username": "gina"})
    c.call("legacy v2 experiments/permissions/create", "POST",
           "/api/2.0/mlflow/experiments/permissions/create", "admin",
           json_body={"username": "gina", "experiment_id": eid, "permission": "READ"})
    c.call("legacy v2 experiments/permissions/get", "GET",
           "/api/2.0/mlflow/experiments/permissions/get", "admin",
           params={"username": "gina", "experiment_id": eid})
    c.call("legacy v2 registered-models/permissions/get", "GET",
           "/api/2.0/mlflow/registered-models/permissions/get", "admin",
           params={"username": "gina", "name": "grant-model"})
    # delegation: owner1 (MANAGE on exp) grants; gina (no MANAGE) tries
    grant(c, "gina", "experiment", eid, "READ", caller="owner1", label="owner1 (MANAGE) grants READ")
    getperm(c, "gina", "experiment", eid, caller="gina", label="gina checks own permission")
    getperm(c, "owner1", "experiment", eid, caller="gina", label="gina checks owner1's permission")
    mkuser(c, "henry")
    grant(c, "henry", "experiment", eid, "MANAGE", caller="gina", label="gina (READ) grants MANAGE")
    grant(c, "gina", "experiment", eid, "MANAGE", caller="gina", label="gina escalates self")
    c.call("owner1 revokes gina", "POST", "/api/3.0/mlflow/users/permissions/revoke", "owner1",
           json_body={"username": "gina", "resource_type": "experiment", "resource_id": eid})
    grant(c, "owner1", "experiment", eid, "READ", caller="owner1", label="owner1 grant to self (dup)")
    c.call("permissions/list owner1 (admin)", "GET", "/api/3.0/mlflow/users/permissions/list", "admin",
           params={"username": "owner1"})
    # roles API quick look
    c.call("roles/list (admin)", "GET", "/api/3.0/mlflow/roles/list", "admin")
    c.call("users/roles/list owner1", "GET", "/api/3.0/mlflow/users/roles/list", "admin",
           params={"username": "owner1"})
    c.call("roles/create (admin)", "POST", "/api/3.0/mlflow/roles/create", "admin",
           json_body={"name": "readers", "workspace": "default"})
    c.call("roles/list (alice)", "GET", "/api/3.0/mlflow/roles/list", "owner1")


# ---------------------------------------------------------------- matrix
PERMS = ["READ", "USE", "EDIT", "MANAGE", "DENY", "NONE"]


def setup_resources(c, owner, tag):
    """owner creates: experiment, run (with param/metric/tag + artifact), second run, logged model,
    registered model with 2 versions + alias. Returns dict."""
    R = {}
    r = c.call(f"{owner} create exp", "POST", "/api/2.0/mlflow/experiments/create", owner,
               json_body={"name": f"exp-{tag}"}, quiet_body=True)
    R["exp"] = j(r)["experiment_id"]
    R["exp_name"] = f"exp-{tag}"
    runs = []
    for i in range(2):
        r = c.call(f"{owner} create run", "POST", "/api/2.0/mlflow/runs/create", owner,
                   json_body={"experiment_id": R["exp"], "run_name": f"r{i}", "start_time": 1}, quiet_body=True)
        runs.append(j(r)["run"]["info"]["run_id"])
    R["run"], R["run2"] = runs
    c.call("log metric", "POST", "/api/2.0/mlflow/runs/log-metric", owner,
           json_body={"run_id": R["run"], "key": "m", "value": 1.0, "timestamp": 1, "step": 0}, quiet_body=True)
    art = f"{R['exp']}/{R['run']}/artifacts"
    R["art"] = art
    c.call("put artifact", "PUT", f"/api/2.0/mlflow-artifacts/artifacts/{art}/a.txt", owner,
           data=b"hello", quiet_body=True)
    r = c.call("create logged model", "POST", "/api/2.0/mlflow/logged-models", owner,
               json_body={"experiment_id": R["exp"], "name": "model", "source_run_id": R["run"]}, quiet_body=True)
    R["lm"] = j(r)["model"]["info"]["model_id"]
    R["model"] = f"model-{tag}"
    c.call("create rm", "POST", "/api/2.0/mlflow/registered-models/create", owner,
           json_body={"name": R["model"]}, quiet_body=True)
    for _ in range(2):
        c.call("create mv", "POST", "/api/2.0/mlflow/model-versions/create", owner,
               json_body={"name": R["model"], "source": f"runs:/{R['run']}/model", "run_id": R["run"]},
               quiet_body=True)
    c.call("set alias", "POST", "/api/2.0/mlflow/registered-models/alias", owner,
           json_body={"name": R["model"], "alias": "champ", "version": "1"}, quiet_body=True)
    return R


def matrix_ops(R):
    """(label, method, path, kwargs) in a safe order; later ops may depend on earlier success."""
    e, run, run2, m, lm, art = R["exp"], R["run"], R["run2"], R["model"], R["lm"], R["art"]
    rid = {"run_id": run, "run_uuid": run}
    return [
        ("exp get", "GET", "/api/2.0/mlflow/experiments/get", dict(params={"experiment_id": e})),
        ("exp get-by-name", "GET", "/api/2.0/mlflow/experiments/get-by-name",
         dict(params={"experiment_name": R["exp_name"]})),
        ("exp set-tag", "POST", "/api/2.0/mlflow/experiments/set-experiment-tag",
         dict(json_body={"experiment_id": e, "key": "k", "value": "v"})),
        ("run get", "GET", "/api/2.0/mlflow/runs/get", dict(params=rid)),
        ("metric history", "GET", "/api/2.0/mlflow/metrics/get-history", dict(params={**rid, "metric_key": "m"})),
        ("runs search", "POST", "/api/2.0/mlflow/runs/search", dict(json_body={"experiment_ids": [e]})),
        ("artifacts list (tracking)", "GET", "/api/2.0/mlflow/artifacts/list", dict(params=rid)),
        ("artifacts list (proxy)", "GET", "/api/2.0/mlflow-artifacts/artifacts", dict(params={"path": art})),
        ("artifact get (proxy)", "GET", f"/api/2.0/mlflow-artifacts/artifacts/{art}/a.txt", {}),
        ("artifact put (proxy)", "PUT", f"/api/2.0/mlflow-artifacts/artifacts/{art}/u.txt", dict(data=b"x")),
        ("artifact delete (proxy)", "DELETE", f"/api/2.0/mlflow-artifacts/artifacts/{art}/u.txt", {}),
        ("run create", "POST", "/api/2.0/mlflow/runs/create", dict(json_body={"experiment_id": e, "start_time": 1})),
        ("run log-parameter", "POST", "/api/2.0/mlflow/runs/log-parameter", dict(json_body={**rid, "key": "p", "value": "1"})),
        ("run log-metric", "POST", "/api/2.0/mlflow/runs/log-metric",
         dict(json_body={**rid, "key": "m", "value": 2.0, "timestamp": 2, "step": 1})),
        ("run log-batch", "POST", "/api/2.0/mlflow/runs/log-batch", dict(json_body={"run_id": run, "tags": [{"key": "b", "value": "1"}]})),
        ("run set-tag", "POST", "/api/2.0/mlflow/runs/set-tag", dict(json_body={**rid, "key": "t", "value": "1"})),
        ("run delete-tag", "POST", "/api/2.0/mlflow/runs/delete-tag", dict(json_body={"run_id": run, "key": "t"})),
        ("run update", "POST", "/api/2.0/mlflow/runs/update", dict(json_body={**rid, "status": "FINISHED", "end_time": 2})),
        ("run log-inputs", "POST", "/api/2.0/mlflow/runs/log-inputs", dict(json_body={"run_id": run, "models": [{"model_id": lm}]})),
        ("logged-model get", "GET", f"/api/2.0/mlflow/logged-models/{lm}", {}),
        ("logged-model search", "POST", "/api/2.0/mlflow/logged-models/search", dict(json_body={"experiment_ids": [e]})),
        ("logged-model create", "POST", "/api/2.0/mlflow/logged-models", dict(json_body={"experiment_id": e, "name": "m2"})),
        ("logged-model set-tags", "PATCH", f"/api/2.0/mlflow/logged-models/{lm}/tags", dict(json_body={"tags": [{"key": "a", "value": "b"}]})),
        ("logged-model finalize", "PATCH", f"/api/2.0/mlflow/logged-models/{lm}", dict(json_body={"model_id": lm, "status": "LOGGED_MODEL_READY"})),
        ("rm get", "GET", "/api/2.0/mlflow/registered-models/get", dict(params={"name": m})),
        ("rm search", "GET", "/api/2.0/mlflow/registered-models/search", dict(params={"filter": f"name = '{m}'"})),
        ("rm get-latest-versions", "POST", "/api/2.0/mlflow/registered-models/get-latest-versions", dict(json_body={"name": m})),
        ("mv get", "GET", "/api/2.0/mlflow/model-versions/get", dict(params={"name": m, "version": "1"})),
        ("mv get-download-uri", "GET", "/api/2.0/mlflow/model-versions/get-download-uri", dict(params={"name": m, "version": "1"})),
        ("mv search", "GET", "/api/2.0/mlflow/model-versions/search", dict(params={"filter": f"name = '{m}'"})),
        ("alias get", "GET", "/api/2.0/mlflow/registered-models/alias", dict(params={"name": m, "alias": "champ"})),
        ("rm update", "PATCH", "/api/2.0/mlflow/registered-models/update", dict(json_body={"name": m, "description": "d"})),
        ("rm set-tag", "POST", "/api/2.0/mlflow/registered-models/set-tag", dict(json_body={"name": m, "key": "k", "value": "v"})),
        ("rm delete-tag", "DELETE", "/api/2.0/mlflow/registered-models/delete-tag", dict(json_body={"name": m, "key": "k"})),
        ("mv update", "PATCH", "/api/2.0/mlflow/model-versions/update", dict(json_body={"name": m, "version": "1", "description": "d"})),
        ("mv set-tag", "POST", "/api/2.0/mlflow/model-versions/set-tag", dict(json_body={"name": m, "version": "1", "key": "k", "value": "v"})),
        ("mv delete-tag", "DELETE", "/api/2.0/mlflow/model-versions/delete-tag", dict(json_body={"name": m, "version": "1", "key": "k"})),
        ("mv transition-stage", "POST", "/api/2.0/mlflow/model-versions/transition-stage",
         dict(json_body={"name": m, "version": "1", "stage": "Staging", "archive_existing_versions": False})),
        ("alias set", "POST", "/api/2.0/mlflow/registered-models/alias", dict(json_body={"name": m, "alias": "new", "version": "1"})),
        ("alias delete", "DELETE", "/api/2.0/mlflow/registered-models/alias", dict(json_body={"name": m, "alias": "champ"})),
        ("mv create", "POST", "/api/2.0/mlflow/model-versions/create",
         dict(json_body={"name": m, "source": f"runs:/{run}/model", "run_id": run})),
        ("mv delete", "DELETE", "/api/2.0/mlflow/model-versions/delete", dict(json_body={"name": m, "version": "2"})),
        ("run delete", "POST", "/api/2.0/mlflow/runs/delete", dict(json_body={"run_id": run2})),
        ("run restore", "POST", "/api/2.0/mlflow/runs/restore", dict(json_body={"run_id": run2})),
        ("logged-model delete", "DELETE", f"/api/2.0/mlflow/logged-models/{lm}", {}),
        ("exp update (rename)", "POST", "/api/2.0/mlflow/experiments/update",
         dict(json_body={"experiment_id": e, "new_name": R["exp_name"] + "-renamed"})),
        ("rm rename", "POST", "/api/2.0/mlflow/registered-models/rename", dict(json_body={"name": m, "new_name": m + "-renamed"})),
        ("rm delete", "DELETE", "/api/2.0/mlflow/registered-models/delete", dict(json_body={"name": m + "-renamed"})),
        ("rm delete (orig name)", "DELETE", "/api/2.0/mlflow/registered-models/delete", dict(json_body={"name": m})),
        ("exp delete", "POST", "/api/2.0/mlflow/experiments/delete", dict(json_body={"experiment_id": e})),
        ("exp restore", "POST", "/api/2.0/mlflow/experiments/restore", dict(json_body={"experiment_id": e})),
    ]


def sec_matrix(c):
    log("\n## MATRIX: per-permission authorization (owner=ownr creates everything; user u_<perm> gets "
        "<perm> on the experiment AND the registered model; NONE = no grant -> default_permission)")
    mkuser(c, "ownr")
    results = {}
    labels = None
    for perm in PERMS + ["ADMIN", "OWNER"]:
        user = {"ADMIN": "admin", "OWNER": "ownr"}.get(perm, "u_" + perm.lower())
        if perm not in ("ADMIN", "OWNER"):
            mkuser(c, user)
        R = setup_resources(c, "ownr", perm.lower())
        if perm not in ("NONE", "ADMIN", "OWNER"):
            grant(c, user, "experiment", R["exp"], perm)
            grant(c, user, "registered_model", R["model"], perm)
        log(f"\n### matrix user {user} ({perm})")
        row = {}
        for label, method, path, kw in matrix_ops(R):
            r = c.call(label, method, path, user, **kw)
            body = r.text.strip().replace("\n", " ")
            row[label] = (r.status_code, body[:160])
        results[perm] = row
        labels = [o[0] for o in matrix_ops(R)]
    log("\n### MATRIX TABLE (status codes)")
    cols = PERMS + ["ADMIN", "OWNER"]
    log("| operation | " + " | ".join(cols) + " |")
    log("|---|" + "---|" * len(cols))
    for label in labels:
        log(f"| {label} | " + " | ".join(str(results[p][label][0]) for p in cols) + " |")
    return results


def sec_search(c):
    log("\n## SEARCH filtering / creator / deleted & renamed grants")
    mkuser(c, "sowner")
    mkuser(c, "sreader")
    ids = {}
    for name, perm in (("s-read", "READ"), ("s-deny", "DENY"), ("s-none", None)):
        r = c.call("create exp " + name, "POST", "/api/2.0/mlflow/experiments/create", "sowner",
                   json_body={"name": name}, quiet_body=True)
        ids[name] = j(r)["experiment_id"]
        c.call("create model " + name, "POST", "/api/2.0/mlflow/registered-models/create", "sowner",
               json_body={"name": name}, quiet_body=True)
        c.call("run in " + name, "POST", "/api/2.0/mlflow/runs/create", "sowner",
               json_body={"experiment_id": ids[name], "start_time": 1}, quiet_body=True)
        if perm:
            grant(c, "sreader", "experiment", ids[name], perm)
            grant(c, "sreader", "registered_model", name, perm)
    c.call("sreader experiments/search", "POST", "/api/2.0/mlflow/experiments/search", "sreader",
           json_body={"max_results": 100, "filter": "name LIKE 's-%'"})
    c.call("sreader experiments/search GET", "GET", "/api/2.0/mlflow/experiments/search", "sreader",
           params={"max_results": 2})
    c.call("sreader rm search", "GET", "/api/2.0/mlflow/registered-models/search", "sreader",
           params={"filter": "name LIKE 's-%'"})
    c.call("sreader mv search", "GET", "/api/2.0/mlflow/model-versions/search", "sreader")
    c.call("sreader runs/search incl DENY exp", "POST", "/api/2.0/mlflow/runs/search", "sreader",
           json_body={"experiment_ids": list(ids.values())})
    c.call("sreader runs/search only readable", "POST", "/api/2.0/mlflow/runs/search", "sreader",
           json_body={"experiment_ids": [ids["s-read"], ids["s-none"]]})
    c.call("sreader logged-models/search incl DENY", "POST", "/api/2.0/mlflow/logged-models/search",
           "sreader", json_body={"experiment_ids": list(ids.values())})
    c.call("admin experiments/search", "POST", "/api/2.0/mlflow/experiments/search", "admin",
           json_body={"max_results": 100, "filter": "name LIKE 's-%'"})
    c.call("sowner permissions/list", "GET", "/api/3.0/mlflow/users/permissions/list", "admin",
           params={"username": "sowner"})
    # grants after delete / rename
    e = ids["s-read"]
    c.call("sowner deletes exp s-read", "POST", "/api/2.0/mlflow/experiments/delete", "sowner",
           json_body={"experiment_id": e})
    getperm(c, "sreader", "experiment", e, label="sreader grant after exp delete")
    c.call("sreader get deleted exp", "GET", "/api/2.0/mlflow/experiments/get", "sreader",
           params={"experiment_id": e})
    c.call("sowner restore", "POST", "/api/2.0/mlflow/experiments/restore", "sowner",
           json_body={"experiment_id": e})
    c.call("sowner renames exp", "POST", "/api/2.0/mlflow/experiments/update", "sowner",
           json_body={"experiment_id": e, "new_name": "s-read-renamed"})
    getperm(c, "sreader", "experiment", e, label="sreader grant after exp rename")
    c.call("sowner renames model s-read", "POST", "/api/2.0/mlflow/registered-models/rename", "sowner",
           json_body={"name": "s-read", "new_name": "s-read2"})
    getperm(c, "sreader", "registered_model", "s-read2", label="grant follows model rename (new)")
    getperm(c, "sreader", "registered_model", "s-read", label="grant on old name")
    c.call("sowner deletes model s-read2", "DELETE", "/api/2.0/mlflow/registered-models/delete", "sowner",
           json_body={"name": "s-read2"})
    getperm(c, "sreader", "registered_model", "s-read2", label="grant after model delete")
    c.call("permissions/list sreader", "GET", "/api/3.0/mlflow/users/permissions/list", "admin",
           params={"username": "sreader"})
    c.call("sowner recreates model s-read2", "POST", "/api/2.0/mlflow/registered-models/create", "admin",
           json_body={"name": "s-read2"})
    getperm(c, "sowner", "registered_model", "s-read2", label="old owner on recreated model")
    # experiment delete: owner's grant kept?
    c.call("sowner deletes exp s-none", "POST", "/api/2.0/mlflow/experiments/delete", "sowner",
           json_body={"experiment_id": ids["s-none"]})
    c.call("permissions/list sowner after deletes", "GET", "/api/3.0/mlflow/users/permissions/list", "admin",
           params={"username": "sowner"})
    # deleted-experiment search visibility
    c.call("sreader search DELETED_ONLY", "POST", "/api/2.0/mlflow/experiments/search", "sreader",
           json_body={"max_results": 100, "view_type": "DELETED_ONLY"})


def sec_security(c):
    log("\n## SECURITY: content-type, CORS, host header, headers on artifacts/UI")
    c.call("exp create text/plain", "POST", "/api/2.0/mlflow/experiments/create", "admin",
           data=json.dumps({"name": "tp"}), headers={"Content-Type": "text/plain"})
    c.call("exp create no content-type", "POST", "/api/2.0/mlflow/experiments/create", "admin",
           data=json.dumps({"name": "tp2"}), headers={"Content-Type": ""})
    c.call("exp create text/plain, no creds", "POST", "/api/2.0/mlflow/experiments/create",
           data=json.dumps({"name": "tp"}), headers={"Content-Type": "text/plain"})
    c.call("grant text/plain", "POST", "/api/3.0/mlflow/users/permissions/grant", "admin",
           data=json.dumps({"username": "admin", "resource_type": "experiment", "resource_id": "0",
                            "permission": "READ"}), headers={"Content-Type": "text/plain"})
    c.call("update-password text/plain", "PATCH", "/api/2.0/mlflow/users/update-password", "admin",
           data=json.dumps({"username": "bob", "password": PW}), headers={"Content-Type": "text/plain"})
    c.call("Host evil.com", "GET", "/api/2.0/mlflow/experiments/get", "admin",
           params={"experiment_id": "0"}, headers={"Host": "evil.com"})
    c.call("Host evil.com, no creds", "GET", "/api/2.0/mlflow/experiments/get",
           params={"experiment_id": "0"}, headers={"Host": "evil.com"})
    c.call("Host 10.1.2.3:80", "GET", "/health", headers={"Host": "10.1.2.3:80"})
    c.call("Origin evil (simple GET)", "GET", "/api/2.0/mlflow/experiments/get", "admin",
           params={"experiment_id": "0"}, headers={"Origin": "https://evil.com"})
    c.call("Origin localhost GET", "GET", "/api/2.0/mlflow/experiments/get", "admin",
           params={"experiment_id": "0"}, headers={"Origin": "http://localhost:3000"})
    c.call("preflight localhost", "OPTIONS", "/api/2.0/mlflow/experiments/create",
           headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization,content-type"})
    c.call("preflight evil", "OPTIONS", "/api/2.0/mlflow/experiments/create",
           headers={"Origin": "https://evil.com", "Access-Control-Request-Method": "POST"})
    c.call("POST Origin evil", "POST", "/api/2.0/mlflow/experiments/create", "admin",
           json_body={"name": "cors-evil"}, headers={"Origin": "https://evil.com"})
    # artifacts with dangerous types
    r = c.call("exp for html", "POST", "/api/2.0/mlflow/experiments/create", "admin",
               json_body={"name": "html-exp"})
    eid = j(r)["experiment_id"]
    r = c.call("run for html", "POST", "/api/2.0/mlflow/runs/create", "admin",
               json_body={"experiment_id": eid, "start_time": 1}, quiet_body=True)
    run = j(r)["run"]["info"]["run_id"]
    base = f"/api/2.0/mlflow-artifacts/artifacts/{eid}/{run}/artifacts"
    for name, content, ctype in (("page.html", b"<html><script>alert(1)</script></html>", "text/html"),
                                 ("img.svg", b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "image/svg+xml"),
                                 ("data.json", b"{}", "application/json"),
                                 ("notes.txt", b"hi", "text/plain"),
                                 ("blob.bin", b"\x00\x01", "application/octet-stream"),
                                 ("noext", b"abc", None)):
        c.call("put " + name, "PUT", f"{base}/{name}", "admin", data=content,
               headers={"Content-Type": ctype} if ctype else None)
        c.call("GET proxy " + name, "GET", f"{base}/{name}", "admin", show_all_headers=True)
    c.call("GET /get-artifact page.html", "GET", "/get-artifact", "admin",
           params={"path": "page.html", "run_uuid": run}, show_all_headers=True)
    c.call("GET /get-artifact img.svg", "GET", "/get-artifact", "admin",
           params={"path": "img.svg", "run_uuid": run}, show_all_headers=True)
    c.call("GET proxy page.html no creds", "GET", f"{base}/page.html", show_all_headers=True)
    c.call("GET / (UI) as admin", "GET", "/", "admin", show_all_headers=True, quiet_body=True)
    c.call("GET /static-files/index.html (no creds)", "GET", "/static-files/index.html",
           show_all_headers=True, quiet_body=True)
    c.call("GET /signup admin headers", "GET", "/signup", "admin", show_all_headers=True, quiet_body=True)
    c.call("GET /version", "GET", "/version", "admin", show_all_headers=True)
    c.call("GET /health headers", "GET", "/health", show_all_headers=True)
    c.call("ajax GET exp", "GET", "/ajax-api/2.0/mlflow/experiments/get", "admin",
           params={"experiment_id": "0"}, show_all_headers=True)


def sec_nodefault(server_factory):
    """Second server: default_permission = NO_PERMISSIONS + explicit security flags."""
    s = server_factory(default_permission="NO_PERMISSIONS",
                       extra_args=["--allowed-hosts", "okla.example.com,127.0.0.1:*",
                                   "--cors-allowed-origins", "https://app.example.com",
                                   "--x-frame-options", "DENY"])
    try:
        c = Caller(s)
        log("\n## NODEFAULT: default_permission = NO_PERMISSIONS (+ --allowed-hosts, --cors-allowed-origins, --x-frame-options DENY)")
        mkuser(c, "own")
        mkuser(c, "other")
        r = c.call("own creates exp", "POST", "/api/2.0/mlflow/experiments/create", "own",
                   json_body={"name": "nd-exp"})
        eid = j(r)["experiment_id"]
        c.call("own creates model", "POST", "/api/2.0/mlflow/registered-models/create", "own",
               json_body={"name": "nd-model"}, quiet_body=True)
        c.call("own creates run", "POST", "/api/2.0/mlflow/runs/create", "own",
               json_body={"experiment_id": eid, "start_time": 1}, quiet_body=True)
        c.call("own reads exp", "GET", "/api/2.0/mlflow/experiments/get", "own", params={"experiment_id": eid}, quiet_body=True)
        c.call("other reads exp", "GET", "/api/2.0/mlflow/experiments/get", "other", params={"experiment_id": eid})
        c.call("other reads Default exp 0", "GET", "/api/2.0/mlflow/experiments/get", "other", params={"experiment_id": "0"})
        c.call("other creates run in 0", "POST", "/api/2.0/mlflow/runs/create", "other",
               json_body={"experiment_id": "0", "start_time": 1})
        c.call("other creates exp", "POST", "/api/2.0/mlflow/experiments/create", "other",
               json_body={"name": "other-exp"})
        c.call("other reads model", "GET", "/api/2.0/mlflow/registered-models/get", "other", params={"name": "nd-model"})
        c.call("other search exps", "POST", "/api/2.0/mlflow/experiments/search", "other",
               json_body={"max_results": 100})
        c.call("other search models", "GET", "/api/2.0/mlflow/registered-models/search", "other")
        c.call("other runs/search on own's exp", "POST", "/api/2.0/mlflow/runs/search", "other",
               json_body={"experiment_ids": [eid]})
        getperm(c, "other", "experiment", eid, label="get perm (no grant, default NO_PERMISSIONS)")
        grant(c, "other", "experiment", eid, "READ")
        c.call("other reads exp after READ", "GET", "/api/2.0/mlflow/experiments/get", "other",
               params={"experiment_id": eid}, quiet_body=True)
        c.call("Host evil.com", "GET", "/health", headers={"Host": "evil.com"})
        c.call("Host okla.example.com", "GET", "/health", headers={"Host": "okla.example.com"})
        c.call("Host localhost:1234 (not in list)", "GET", "/health", headers={"Host": "localhost:1234"})
        c.call("preflight allowed origin", "OPTIONS", "/api/2.0/mlflow/experiments/create",
               headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"})
        c.call("preflight localhost origin", "OPTIONS", "/api/2.0/mlflow/experiments/create",
               headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"})
        c.call("GET with allowed origin", "GET", "/api/2.0/mlflow/experiments/get", "own",
               params={"experiment_id": eid}, headers={"Origin": "https://app.example.com"}, quiet_body=True)
        c.call("POST with other origin", "POST", "/api/2.0/mlflow/experiments/create", "own",
               json_body={"name": "x-origin"}, headers={"Origin": "https://evil.com"})
        c.call("health headers (x-frame DENY)", "GET", "/health", show_all_headers=True)
    finally:
        s.stop()


def sec_client(c):
    log("\n## CLIENT: official Python client against the auth app")
    import mlflow
    from mlflow import MlflowClient
    from mlflow.server import get_app_client

    def env(user=None, pw=None, token=None):
        for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
            os.environ.pop(k, None)
        if user:
            os.environ["MLFLOW_TRACKING_USERNAME"] = user
            os.environ["MLFLOW_TRACKING_PASSWORD"] = pw
        if token:
            os.environ["MLFLOW_TRACKING_TOKEN"] = token

    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"

    def attempt(label, fn):
        try:
            res = fn()
            log(f"- [client {label}] OK: {res!r}"[:900])
        except Exception as ex:
            log(f"- [client {label}] {type(ex).__name__}: "
                f"{getattr(ex, 'error_code', '')} {str(ex)[:500]!r}")

    env("admin", ADMIN_PW)
    ac = get_app_client("basic-auth", tracking_uri=c.s.url)
    log(f"- get_app_client type: {type(ac).__module__}.{type(ac).__name__}; methods: "
        + ", ".join(m for m in dir(ac) if not m.startswith("_")))
    attempt("create_user carl", lambda: ac.create_user("carl", PW))
    attempt("create_user short pw", lambda: ac.create_user("carl2", "short"))
    attempt("create_user dup", lambda: ac.create_user("carl", PW))
    attempt("get_user carl", lambda: ac.get_user("carl"))
    attempt("get_user ghost", lambda: ac.get_user("ghost"))
    for name in ("list_users", "get_current_user"):
        if hasattr(ac, name):
            attempt(name, lambda: getattr(ac, name)())
    attempt("update_user_admin", lambda: ac.update_user_admin("carl", False))
    cl = MlflowClient(tracking_uri=c.s.url)
    eid = None
    try:
        eid = cl.create_experiment("client-exp")
        log(f"- [client create_experiment as admin] -> {eid}")
    except Exception as ex:
        log(f"- [client create_experiment] {ex}")
    for name in ("grant_user_permission", "get_user_permission", "revoke_user_permission",
                 "create_experiment_permission", "get_experiment_permission"):
        log(f"- AuthServiceClient has {name}: {hasattr(ac, name)}")
    if hasattr(ac, "grant_user_permission"):
        import inspect
        for name in ("grant_user_permission", "get_user_permission", "revoke_user_permission",
                     "update_user_password"):
            if hasattr(ac, name):
                log(f"- signature {name}{inspect.signature(getattr(ac, name))}")
        attempt("grant_user_permission READ", lambda: ac.grant_user_permission("carl", "experiment", eid, "READ"))
        attempt("get_user_permission", lambda: ac.get_user_permission("carl", "experiment", eid))
    env("carl", PW)
    cl2 = MlflowClient(tracking_uri=c.s.url)
    attempt("carl get_experiment (READ)", lambda: cl2.get_experiment(eid).name)
    attempt("carl create_run (READ)", lambda: cl2.create_run(eid).info.run_id)
    attempt("carl create_user (non-admin)", lambda: get_app_client("basic-auth", tracking_uri=c.s.url).create_user("zed", PW))
    env("carl", "wrong-password-1")
    attempt("carl wrong password get_experiment", lambda: MlflowClient(tracking_uri=c.s.url).get_experiment(eid))
    env(token="some-token")
    attempt("token only get_experiment", lambda: MlflowClient(tracking_uri=c.s.url).get_experiment(eid))
    env()
    attempt("no creds get_experiment", lambda: MlflowClient(tracking_uri=c.s.url).get_experiment(eid))
    env("carl", PW)
    if hasattr(ac, "update_user_password"):
        attempt("carl update own pw via client", lambda: get_app_client("basic-auth", tracking_uri=c.s.url).update_user_password("carl", "another-password-1"))
    env("admin", ADMIN_PW)
    attempt("admin delete_user carl", lambda: ac.delete_user("carl"))
    env()


SECTIONS = ["auth", "users", "grants", "matrix", "search", "security", "client", "lastadmin", "nodefault"]


def main():
    want = sys.argv[1:] or SECTIONS
    import mlflow
    log(f"# observe_mlflow_auth.py, mlflow {mlflow.__version__}, {time.strftime('%Y-%m-%d %H:%M:%S')}")
    s = None
    if any(x != "nodefault" for x in want):
        s = Server()
    try:
        c = Caller(s) if s else None
        for name in SECTIONS:
            if name not in want:
                continue
            t0 = time.time()
            try:
                if name == "nodefault":
                    sec_nodefault(Server)
                else:
                    globals()["sec_" + name](c)
            except Exception as ex:  # keep going: this is an observation script
                import traceback
                log(f"!! section {name} failed: {ex}\n{traceback.format_exc()}")
            log(f"(section {name} took {time.time() - t0:.0f}s)")
    finally:
        if s:
            s.stop()
            shutil.copy(s.logf.name, "/tmp/observe_mlflow_auth_server.log")


if __name__ == "__main__":
    main()
