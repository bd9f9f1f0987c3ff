#!/usr/bin/env python3
"""End-to-end authentication and authorization checks, driven with the official `mlflow` client.

Plays an admin and a handful of users against the tracking server named by
`MLFLOW_TRACKING_URI` and asserts every answer: who gets in (basic auth, 401s), the user and
grant APIs of MLflow's basic-auth app (`mlflow.server.get_app_client("basic-auth", ...)`), and
what each permission lets a user do on experiments, runs, registered models, model versions,
aliases and stages (docs/reference/mlflow-auth.md, section 3.2). It must pass against the
reference `mlflow server --app-name basic-auth` and against okla-registry alike, so without
OKLA_EXTENSIONS it only checks behaviour MLflow itself has.

Run (from the workspace root, with the venv of registry/tests/requirements.txt plus
`mlflow[auth]`):

    MLFLOW_TRACKING_URI=http://127.0.0.1:5000 OKLA_ADMIN_PASSWORD=... \
        .venv/bin/python registry/tests/mlflow_auth.py

Checked against the reference server, started as docs/reference/observe_mlflow_auth.py does
(about 20 s there once it is up). /tmp/ref/basic_auth.ini is the packaged ini with
`database_uri = sqlite:////tmp/ref/basic_auth.db` and `auth_cache_ttl_seconds = 600` added
(without the cache every request verifies a scrypt hash: seconds each on a loaded machine):

    cd /tmp/ref && MLFLOW_AUTH_CONFIG_PATH=/tmp/ref/basic_auth.ini \
    MLFLOW_AUTH_ADMIN_PASSWORD=adminpass-123456 MLFLOW_FLASK_SERVER_SECRET_KEY=some-secret \
    .venv/bin/mlflow server --app-name basic-auth --workers 1 --host 127.0.0.1 --port 5000 \
        --backend-store-uri sqlite:////tmp/ref/mlflow.db --artifacts-destination /tmp/ref/artifacts
    MLFLOW_TRACKING_URI=http://127.0.0.1:5000 OKLA_ADMIN_PASSWORD=adminpass-123456 \
        .venv/bin/python registry/tests/mlflow_auth.py

Environment:
    MLFLOW_TRACKING_URI   required; the server under test.
    OKLA_ADMIN_USERNAME   the admin user (default `admin`).
    OKLA_ADMIN_PASSWORD   required; the admin's password.
    OKLA_EXTENSIONS=1     also checks what okla-registry does beyond MLflow: JSON bodies on every
                          401/403, API tokens, MANAGE on deployments, node reports refused to
                          users, the history's actor, no lockout after wrong passwords.

Every user, experiment and model this script creates carries a random suffix, so it can run
again against a server that still holds the data of an earlier (possibly failed) run.
Exit status 0 means every check passed; anything else prints the failing step.
"""

import os

# A wrong 5xx from the server must fail the step at once: by default the client retries
# 408/429/5xx with exponential backoff for minutes before giving up.
os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
# Synchronous logging, so a rejected log call raises at the call that caused it.
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
# Keep the client from printing things that are not under test (git lookups, run URLs).
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

from concurrent.futures import ThreadPoolExecutor  # noqa: E402
import contextlib  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import uuid  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402
from urllib.parse import quote  # noqa: E402

import requests  # noqa: E402

import mlflow  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric, Param, RunTag  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.server import get_app_client  # noqa: E402

# Stage APIs are deprecated in MLflow 3 but still part of the wire contract we must keep.
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=UserWarning)

SUFFIX = uuid.uuid4().hex[:8]
OKLA_EXTENSIONS = os.environ.get("OKLA_EXTENSIONS") == "1"
CREDENTIAL_VARIABLES = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
WWW_AUTHENTICATE = 'Basic realm="mlflow"'

TRACKING_URI = ""  # set in main()
client: MlflowClient  # acts as whoever `signed_in` put into the environment
auth: "mlflow.server.auth.client.AuthServiceClient"  # idem
http = requests.Session()
http.trust_env = False  # no ~/.netrc credentials, no proxies: only what a check sends
_step_count = 0


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------


class CheckFailed(AssertionError):
    """An expectation about a server answer did not hold."""


def step(message):
    """Prints one progress line per checked step."""
    global _step_count
    _step_count += 1
    print(f"  [{_step_count:3d}] {message}", flush=True)


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def check_eq(actual, expected, what):
    if actual != expected:
        raise CheckFailed(f"{what}: expected {expected!r}, got {actual!r}")


def section(title):
    print(f"\n== {title}", flush=True)


def timed(area, *args):
    """Runs one area's checks and prints how long it took (the reference server is slow)."""
    started = time.time()
    result = area(*args)
    print(f"   -- {area.__name__}: {time.time() - started:.1f} s", flush=True)
    return result


# Every password and token sent to the server, written to $OKLA_SECRETS_FILE at the end, so the
# caller can check that none of them reached the server's log.
SECRETS = set()


def remember(secret):
    if secret and len(secret) >= 8:
        SECRETS.add(secret)


class Account:
    """A user of the server under test: a unique name and a password of at least 12 characters."""

    def __init__(self, role, password=None, name=None):
        self.role = role
        self.name = name or f"{role}-{SUFFIX}"
        self.password = password or f"pw-{uuid.uuid4().hex[:13]}"

    @property
    def basic(self):
        return (self.name, self.password)

    def __repr__(self):
        return self.name


@contextlib.contextmanager
def signed_in(account=None, token=None):
    """Makes the mlflow client act as `account` (basic auth) or with `token` (bearer), or with
    no credentials at all: the client reads MLFLOW_TRACKING_USERNAME/PASSWORD/TOKEN from
    os.environ on every request."""
    saved = {name: os.environ.pop(name, None) for name in CREDENTIAL_VARIABLES}
    remember(token)
    if account is not None:
        remember(account.password)
        os.environ["MLFLOW_TRACKING_USERNAME"] = account.name
        os.environ["MLFLOW_TRACKING_PASSWORD"] = account.password
    if token is not None:
        os.environ["MLFLOW_TRACKING_TOKEN"] = token
    try:
        yield
    finally:
        for name in CREDENTIAL_VARIABLES:
            os.environ.pop(name, None)
        for name, value in saved.items():
            if value is not None:
                os.environ[name] = value


def call(method, path, account=None, *, basic=None, token=None, headers=None, **kwargs):
    """One raw HTTP request, as `account` (or explicit `basic` credentials, or a bearer `token`,
    or anonymously)."""
    all_headers = dict(headers or {})
    remember(token)
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    if account is not None:
        basic = account.basic
    if basic is not None:
        remember(basic[1])
    return http.request(method, TRACKING_URI + path, auth=basic, headers=all_headers, timeout=120, **kwargs)


def json_of(response):
    try:
        return response.json()
    except ValueError:
        return None


def describe(response):
    return f"{response.status_code} {response.headers.get('Content-Type')} {response.text[:300]!r}"


def check_ok(response, what):
    check(response.status_code == 200, f"{what}: expected 200, got {describe(response)}")
    return json_of(response)


def check_json_error(response, status, error_code, what):
    check(response.status_code == status, f"{what}: expected {status} {error_code}, got {describe(response)}")
    body = json_of(response)
    check(
        isinstance(body, dict) and body.get("error_code") == error_code,
        f"{what}: expected error_code {error_code}, got {describe(response)}",
    )
    check(isinstance(body.get("message"), str), f"{what}: error without a message: {body}")


def check_unauthenticated(response, what):
    """401 with MLflow's challenge. okla answers an MLflow JSON error; MLflow itself text/html."""
    check(response.status_code == 401, f"{what}: expected 401, got {describe(response)}")
    check_eq(response.headers.get("WWW-Authenticate"), WWW_AUTHENTICATE, f"{what}: WWW-Authenticate")
    body = json_of(response)
    if isinstance(body, dict) and "error_code" in body:
        check_eq(body["error_code"], "UNAUTHENTICATED", f"{what}: error_code")
    else:
        check(not OKLA_EXTENSIONS, f"{what}: 401 body must be an MLflow JSON error, got {describe(response)}")
        check("not authenticated" in response.text, f"{what}: 401 body {response.text[:200]!r}")


def check_forbidden(response, what):
    """403. okla answers an MLflow JSON PERMISSION_DENIED; MLflow itself text/html."""
    check(response.status_code == 403, f"{what}: expected 403, got {describe(response)}")
    body = json_of(response)
    if isinstance(body, dict) and "error_code" in body:
        check_eq(body["error_code"], "PERMISSION_DENIED", f"{what}: error_code")
    else:
        check(not OKLA_EXTENSIONS, f"{what}: 403 body must be an MLflow JSON error, got {describe(response)}")
        check("Permission denied" in response.text, f"{what}: 403 body {response.text[:200]!r}")


def error_of(error):
    if isinstance(error, MlflowException):
        return f"{error.error_code}: {error.message[:300]}"
    return f"{type(error).__name__}: {error}"


@contextlib.contextmanager
def expect_mlflow_error(error_code, what):
    """Asserts that the block raises MlflowException carrying `error_code`."""
    try:
        yield
    except MlflowException as error:
        if error.error_code != error_code:
            raise CheckFailed(f"{what}: expected error_code {error_code}, got {error_of(error)}") from error
        return
    raise CheckFailed(f"{what}: expected MlflowException {error_code}, but the call succeeded")


def is_denied(error):
    if isinstance(error, MlflowException):
        return error.error_code == "PERMISSION_DENIED"
    # The client's artifact repository raises requests' own error for a refused proxy call.
    response = getattr(error, "response", None)
    return isinstance(error, requests.HTTPError) and response is not None and response.status_code == 403


def expect_denied(operation, what):
    """Runs `operation`, which must be refused with PERMISSION_DENIED (a 403)."""
    try:
        operation()
    except (MlflowException, requests.HTTPError) as error:
        if is_denied(error):
            return
        raise CheckFailed(f"{what}: expected PERMISSION_DENIED, got {error_of(error)}") from error
    raise CheckFailed(f"{what}: expected PERMISSION_DENIED, but the call succeeded")


def expect_allowed(operation, what):
    """Runs `operation`, which must succeed; a refusal fails with `what` in the message."""
    try:
        operation()
    except (MlflowException, requests.HTTPError) as error:
        raise CheckFailed(f"{what}: expected success, got {error_of(error)}") from error


def permission_of(account, resource_type, resource_id):
    """The effective permission as `permissions/get` answers it: (permission, allowed)."""
    result = auth.get_user_permission(account.name, resource_type, resource_id)
    return result.permission, result.allowed


def grant(account, resource_type, resource_id, permission):
    auth.grant_user_permission(account.name, resource_type, resource_id, permission)


def revoke(account, resource_type, resource_id):
    auth.revoke_user_permission(account.name, resource_type, resource_id)


def permission_rows(account):
    """`permissions/list` for `account` (the caller must be admin or `account`)."""
    body = check_ok(
        call("GET", "/api/3.0/mlflow/users/permissions/list", admin, params={"username": account.name}),
        f"permissions/list {account}",
    )
    return {
        (row["resource_type"], row["resource_pattern"]): row["permission"] for row in body.get("permissions", [])
    }


def log_model_file(run_id):
    """Puts a file under `model/` of the run, so `runs:/<run>/model` names something real."""
    client.log_text(run_id, "artifact_path: model\nflavors: {}\n", "model/MLmodel")


def register_version(model_name, run_id):
    version = client.create_model_version(model_name, f"runs:/{run_id}/model", run_id=run_id, await_creation_for=0)
    return version.version


# ---------------------------------------------------------------------------------------
# Who plays
# ---------------------------------------------------------------------------------------

admin: Account  # set by main() from OKLA_ADMIN_USERNAME / OKLA_ADMIN_PASSWORD
owner = Account("owner")  # creates the resources
alice = Account("alice")  # EDIT in the effects
bob = Account("bob")  # READ
carol = Account("carol")  # MANAGE
dave = Account("dave")  # the users API's throwaway
erin = Account("erin")  # DENY
frank = Account("frank")  # no grant (default READ); search filtering
gus = Account("gus")  # USE
USERS = [owner, alice, bob, carol, dave, erin, frank, gus]


def effect_users():
    """The users in the order they try every operation, with the permission each holds."""
    return [
        (bob, "READ"),
        (gus, "USE"),
        (frank, "NONE"),
        (erin, "DENY"),
        (alice, "EDIT"),
        (carol, "MANAGE"),
        (owner, "OWNER"),
        (admin, "ADMIN"),
    ]


# ---------------------------------------------------------------------------------------
# Authentication: 401s and public routes
# ---------------------------------------------------------------------------------------


def check_authentication():
    section("authentication")
    health = call("GET", "/health")
    check_ok(health, "GET /health without credentials")
    info = call("GET", "/api/3.0/mlflow/server-info")
    check(isinstance(check_ok(info, "server-info without credentials"), dict), f"server-info JSON: {info.text[:200]}")
    step("/health and /api/3.0/mlflow/server-info need no credentials")

    get_default = ("GET", "/api/2.0/mlflow/experiments/get")
    query = {"params": {"experiment_id": "0"}}
    check_unauthenticated(call(*get_default, **query), "experiments/get without credentials")
    check_unauthenticated(call(*get_default, basic=(admin.name, "wrong-password-123"), **query), "wrong password")
    check_unauthenticated(call(*get_default, basic=(f"ghost-{SUFFIX}", "whatever-123456"), **query), "unknown user")
    check_unauthenticated(
        call(*get_default, basic=(admin.name.upper(), admin.password), **query), "upper-cased admin username"
    )
    check_unauthenticated(call("GET", "/ajax-api/2.0/mlflow/experiments/get", **query), "ajax-api without credentials")
    check_unauthenticated(
        call("POST", "/api/2.0/mlflow/experiments/create", json={"name": f"anon-{SUFFIX}"}), "POST without credentials"
    )
    check_unauthenticated(
        call("GET", "/api/2.0/mlflow/experiments/get", headers={"Authorization": "Basic !!!notbase64"}, **query),
        "malformed basic credentials",
    )
    step("no credentials, wrong password, unknown user, wrong case, malformed header → 401 + WWW-Authenticate")

    check_ok(call(*get_default, admin, **query), "experiments/get as admin")
    step("the admin's credentials are accepted")

    with signed_in(None):
        with expect_mlflow_error("UNAUTHENTICATED", "client without credentials"):
            client.get_experiment("0")
    with signed_in(Account("nobody", name=admin.name, password="wrong-password-123")):
        with expect_mlflow_error("UNAUTHENTICATED", "client with a wrong password"):
            client.search_experiments()
    step("the mlflow client without or with wrong credentials → UNAUTHENTICATED")

    if OKLA_EXTENSIONS:
        check_unauthenticated(call(*get_default, token=f"okla_bogus{SUFFIX}", **query), "unknown bearer token")
        step("an unknown bearer token → 401 + WWW-Authenticate (okla)")


# ---------------------------------------------------------------------------------------
# Users API
# ---------------------------------------------------------------------------------------


def check_users():
    section("users API (get_app_client('basic-auth'))")
    with signed_in(admin):
        for account in USERS:
            created = auth.create_user(account.name, account.password)
            check_eq(created.username, account.name, "create_user username")
            check_eq(created.is_admin, False, f"create_user {account} is_admin")
            check(isinstance(created.id, int), f"create_user id {created.id!r}")
        step(f"admin creates {len(USERS)} users with create_user")

        with expect_mlflow_error("INVALID_PARAMETER_VALUE", "11-character password"):
            auth.create_user(f"shorty-{SUFFIX}", "a" * 11)
        twelve = Account("twelve", password="abcdefghijk1")
        check_eq(auth.create_user(twelve.name, twelve.password).username, twelve.name, "12-character password")
        step("password of 11 characters → INVALID_PARAMETER_VALUE; 12 accepted")

        with expect_mlflow_error("RESOURCE_ALREADY_EXISTS", "duplicate username"):
            auth.create_user(alice.name, "another-password-1")
    create_path = "/api/2.0/mlflow/users/create"
    check_json_error(
        call("POST", create_path, admin, json={"username": alice.name, "password": "another-password-1"}),
        400,
        "RESOURCE_ALREADY_EXISTS",
        "raw duplicate username",
    )
    check_json_error(
        call("POST", create_path, admin, json={"username": f"shorty-{SUFFIX}", "password": "short"}),
        400,
        "INVALID_PARAMETER_VALUE",
        "raw short password",
    )
    check_forbidden(
        call("POST", create_path, alice, json={"username": f"mallory-{SUFFIX}", "password": "mallory-password-1"}),
        "raw users/create by a non-admin",
    )
    step("duplicate username → RESOURCE_ALREADY_EXISTS (400); raw short password 400; non-admin create 403")

    with signed_in(admin):
        got = auth.get_user(alice.name)
        check_eq((got.username, got.is_admin), (alice.name, False), "get_user alice")
        with expect_mlflow_error("RESOURCE_DOES_NOT_EXIST", "get_user unknown"):
            auth.get_user(f"ghost-{SUFFIX}")
        step("get_user as admin; unknown user → RESOURCE_DOES_NOT_EXIST")

    listed = check_ok(call("GET", "/api/2.0/mlflow/users/list", admin), "users/list as admin")
    names = {user["username"] for user in listed["users"]}
    check({alice.name, bob.name, admin.name} <= names, f"users/list misses users: {sorted(names)[:20]}")
    current = check_ok(call("GET", "/api/2.0/mlflow/users/current", alice), "users/current as alice")
    check_eq((current["user"]["username"], current["user"]["is_admin"]), (alice.name, False), "users/current")
    current = check_ok(call("GET", "/ajax-api/2.0/mlflow/users/current", admin), "ajax-api users/current as admin")
    check_eq((current["user"]["username"], current["user"]["is_admin"]), (admin.name, True), "users/current admin")
    step("users/list (admin), users/current (also under /ajax-api)")

    with signed_in(alice):
        check_eq(auth.get_user(alice.name).username, alice.name, "get_user self")
        expect_denied(lambda: auth.get_user(bob.name), "non-admin get_user of another user")
        expect_denied(lambda: auth.create_user(f"mallory-{SUFFIX}", "mallory-password-1"), "non-admin create_user")
        expect_denied(lambda: auth.update_user_admin(alice.name, True), "non-admin update_user_admin on self")
        expect_denied(lambda: auth.delete_user(bob.name), "non-admin delete_user")
        expect_denied(
            lambda: auth.update_user_password(bob.name, "hacked-password-1", current_password=alice.password),
            "non-admin update_user_password of another user",
        )
    step("a non-admin reads only itself; create/update-admin/delete/others' passwords → PERMISSION_DENIED")

    # Self-service password change: current_password is required and must match.
    new_password = f"new-{uuid.uuid4().hex[:12]}"
    with signed_in(alice):
        with expect_mlflow_error("INVALID_PARAMETER_VALUE", "own password without current_password"):
            auth.update_user_password(alice.name, new_password)
        with expect_mlflow_error("INVALID_PARAMETER_VALUE", "own password with a wrong current_password"):
            auth.update_user_password(alice.name, new_password, current_password="not-the-password-1")
        with expect_mlflow_error("INVALID_PARAMETER_VALUE", "own password too short"):
            auth.update_user_password(alice.name, "short", current_password=alice.password)
        auth.update_user_password(alice.name, new_password, current_password=alice.password)
    check_unauthenticated(call("GET", "/api/2.0/mlflow/users/current", alice), "alice's old password")
    alice.password = new_password
    check_ok(call("GET", "/api/2.0/mlflow/users/current", alice), "alice's new password")
    step("own password: needs current_password (missing/wrong/short → INVALID_PARAMETER_VALUE); old one → 401")

    # Admin reset (no current_password), admin flag, deletion: on a throwaway user.
    with signed_in(admin):
        old_password = dave.password
        dave.password = f"reset-{uuid.uuid4().hex[:12]}"
        auth.update_user_password(dave.name, dave.password)
    check_unauthenticated(
        call("GET", "/api/2.0/mlflow/users/current", basic=(dave.name, old_password)), "dave's password before reset"
    )
    check_ok(call("GET", "/api/2.0/mlflow/users/current", dave), "dave's password after reset")
    step("admin resets a password without current_password; the old one → 401")

    with signed_in(admin):
        auth.update_user_admin(dave.name, True)
        check_eq(auth.get_user(dave.name).is_admin, True, "dave is admin")
    with signed_in(dave):
        check_eq(auth.get_user(bob.name).username, bob.name, "an admin dave reads bob")
    with signed_in(admin):
        auth.update_user_admin(dave.name, False)
        check_eq(auth.get_user(dave.name).is_admin, False, "dave is no longer admin")
    with signed_in(dave):
        expect_denied(lambda: auth.get_user(bob.name), "demoted dave reads bob")
    step("update_user_admin true/false: admin rights follow at once")

    with signed_in(admin):
        with expect_mlflow_error("BAD_REQUEST", "admin deletes its own account"):
            auth.delete_user(admin.name)
        with expect_mlflow_error("RESOURCE_DOES_NOT_EXIST", "delete unknown user"):
            auth.delete_user(f"ghost-{SUFFIX}")
        auth.delete_user(dave.name)
        with expect_mlflow_error("RESOURCE_DOES_NOT_EXIST", "get_user of a deleted user"):
            auth.get_user(dave.name)
    check_unauthenticated(call("GET", "/api/2.0/mlflow/users/current", dave), "deleted user logs in")
    step("delete_user: not self (BAD_REQUEST), unknown → RESOURCE_DOES_NOT_EXIST; a deleted user → 401")


# ---------------------------------------------------------------------------------------
# Grants API
# ---------------------------------------------------------------------------------------


def check_grants():
    section("grants API (users/permissions/*)")
    with signed_in(owner):
        experiment_id = client.create_experiment(f"auth-grants-{SUFFIX}")
        model_name = f"auth-grants-{SUFFIX}"
        client.create_registered_model(model_name)
        check_eq(permission_of(owner, "experiment", experiment_id), ("MANAGE", True), "creator on experiment")
        check_eq(permission_of(owner, "registered_model", model_name), ("MANAGE", True), "creator on model")
    rows = permission_rows(owner)
    check_eq(rows.get(("experiment", experiment_id)), "MANAGE", "owner's experiment row in permissions/list")
    check_eq(rows.get(("registered_model", model_name)), "MANAGE", "owner's model row in permissions/list")
    step("the creator gets MANAGE on its experiment (by id) and model (by name), listed by permissions/list")

    with signed_in(admin):
        check_eq(permission_of(alice, "experiment", experiment_id), ("READ", False), "no grant → default READ")
        grant(alice, "experiment", experiment_id, "READ")
        check_eq(permission_of(alice, "experiment", experiment_id), ("READ", False), "READ grant")
        check_eq(permission_rows(alice).get(("experiment", experiment_id)), "READ", "alice's row")
        for permission in ("READ", "EDIT"):
            with expect_mlflow_error("RESOURCE_ALREADY_EXISTS", f"duplicate grant ({permission})"):
                grant(alice, "experiment", experiment_id, permission)
        revoke(alice, "experiment", experiment_id)
        check(("experiment", experiment_id) not in permission_rows(alice), "revoked row still listed")
        with expect_mlflow_error("RESOURCE_DOES_NOT_EXIST", "revoke without a grant"):
            revoke(alice, "experiment", experiment_id)
    fields = {"username": alice.name, "resource_type": "experiment", "resource_id": experiment_id}
    grant_path, revoke_path = "/api/3.0/mlflow/users/permissions/grant", "/api/3.0/mlflow/users/permissions/revoke"
    check_json_error(call("POST", revoke_path, admin, json=fields), 404, "RESOURCE_DOES_NOT_EXIST", "revoke missing")
    check_ok(call("POST", grant_path, admin, json={**fields, "permission": "READ"}), "raw grant")
    check_json_error(
        call("POST", grant_path, admin, json={**fields, "permission": "READ"}),
        400,
        "RESOURCE_ALREADY_EXISTS",
        "raw duplicate grant",
    )
    check_json_error(
        call("POST", grant_path, admin, json={**fields, "permission": "BOGUS"}),
        400,
        "INVALID_PARAMETER_VALUE",
        "raw grant of a bad permission",
    )
    check_ok(call("POST", revoke_path, admin, json=fields), "raw revoke")
    step("grant/get/list/revoke; duplicate grant → 400 RESOURCE_ALREADY_EXISTS; revoke missing → 404; BOGUS → 400")

    with signed_in(admin):
        for permission, allowed in (("USE", True), ("EDIT", True), ("MANAGE", True), ("DENY", False)):
            grant(alice, "experiment", experiment_id, permission)
            check_eq(permission_of(alice, "experiment", experiment_id), (permission, allowed), f"{permission} grant")
            revoke(alice, "experiment", experiment_id)
        grant(alice, "registered_model", model_name, "EDIT")
        check_eq(permission_of(alice, "registered_model", model_name), ("EDIT", True), "EDIT on a model by name")
        step("USE/EDIT/MANAGE → allowed; DENY → not allowed; registered_model grants by name")

        for permission in ("BOGUS", "read", "NO_PERMISSIONS"):
            with expect_mlflow_error("INVALID_PARAMETER_VALUE", f"grant permission {permission!r}"):
                grant(bob, "experiment", experiment_id, permission)
        with expect_mlflow_error("INVALID_PARAMETER_VALUE", "grant on a bogus resource type"):
            grant(bob, "bogus_type", experiment_id, "READ")
        with expect_mlflow_error("INVALID_PARAMETER_VALUE", "get on a bogus resource type"):
            permission_of(bob, "bogus_type", experiment_id)
        with expect_mlflow_error("RESOURCE_DOES_NOT_EXIST", "grant to an unknown user"):
            auth.grant_user_permission(f"ghost-{SUFFIX}", "experiment", experiment_id, "READ")
        check_eq(permission_rows(bob), {}, "refused grants leave no row")
        step("bad permission (BOGUS, read, NO_PERMISSIONS)/type → INVALID_PARAMETER_VALUE; unknown user → 404")

    with signed_in(alice):
        check_eq(permission_of(alice, "registered_model", model_name), ("EDIT", True), "alice reads her own permission")
        expect_denied(lambda: permission_of(owner, "experiment", experiment_id), "alice reads owner's permission")
    step("permissions/get: self allowed, another user's → PERMISSION_DENIED")

    # Delegation: a MANAGE holder grants and revokes others; a READ holder cannot.
    with signed_in(owner):
        grant(carol, "experiment", experiment_id, "READ")
    with signed_in(carol):
        expect_denied(lambda: grant(bob, "experiment", experiment_id, "READ"), "READ holder grants others")
        expect_denied(lambda: grant(carol, "experiment", experiment_id, "MANAGE"), "READ holder escalates itself")
        expect_denied(lambda: revoke(owner, "experiment", experiment_id), "READ holder revokes the owner")
    with signed_in(owner):
        revoke(carol, "experiment", experiment_id)
    with signed_in(admin):
        check(("experiment", experiment_id) not in permission_rows(carol), "owner's revoke of carol")
    step("the MANAGE holder (creator) grants and revokes; a READ holder may not grant, escalate or revoke")


# ---------------------------------------------------------------------------------------
# Permission effects (docs/reference/mlflow-auth.md, section 3.2)
# ---------------------------------------------------------------------------------------

# What each permission reaches: 1 = reads, 2 = + writes (EDIT), 3 = + deletes (MANAGE).
RANK = {"DENY": 0, "NONE": 1, "READ": 1, "USE": 1, "EDIT": 2, "MANAGE": 3, "OWNER": 3, "ADMIN": 3}
NEEDS = {"read": 1, "edit": 2, "manage": 3}


def setup_effects():
    """The owner's experiment (2 runs, a metric, a model file) and registered model (versions 1
    and 2, alias `champ`)."""
    res = SimpleNamespace(experiment_name=f"auth-effects-{SUFFIX}", model=f"auth-effects-{SUFFIX}")
    with signed_in(owner):
        res.experiment_id = client.create_experiment(res.experiment_name)
        res.run1 = client.create_run(res.experiment_id, run_name="r1").info.run_id
        client.log_metric(res.run1, "m", 1.0, step=0)
        log_model_file(res.run1)
        res.run2 = client.create_run(res.experiment_id, run_name="r2").info.run_id
        client.create_registered_model(res.model)
        check_eq([register_version(res.model, res.run1) for _ in range(2)], ["1", "2"], "owner's versions")
        client.set_registered_model_alias(res.model, "champ", "1")
    step(f"owner set up experiment {res.experiment_id} (2 runs) and model {res.model} (v1, v2, @champ)")
    return res


def effect_operations(res, who, mine):
    """(tier, label, operation) in an order where every success leaves the resources usable for
    the next user: names carry `who`, and what one user deletes it created or restores."""
    e, m, r1, r2 = res.experiment_id, res.model, res.run1, res.run2
    key = who.name

    def read_experiment():
        check_eq(client.get_experiment(e).name, res.experiment_name, "experiment name")

    def read_by_name():
        found = client.get_experiment_by_name(res.experiment_name)
        check(found is not None and found.experiment_id == e, f"get_experiment_by_name: {found}")

    def read_run():
        check_eq(client.get_run(r1).data.metrics.get("m"), 1.0, "run metric m")

    def read_history():
        check_eq([metric.value for metric in client.get_metric_history(r1, "m")], [1.0], "metric history")

    def list_artifacts():
        check_eq([f.path for f in client.list_artifacts(r1, "model")], ["model/MLmodel"], "artifacts")

    def download_artifact():
        directory = tempfile.mkdtemp(prefix="mlflow-auth-")
        try:
            local = client.download_artifacts(r1, "model/MLmodel", directory)
            check("flavors" in Path(local).read_text(), "downloaded MLmodel content")
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def read_model():
        check_eq(client.get_registered_model(m).name, m, "registered model name")

    def read_version():
        check_eq(client.get_model_version(m, "1").version, "1", "model version")

    def read_alias():
        check_eq(client.get_model_version_by_alias(m, "champ").version, "1", "champ alias")

    def read_latest():
        check(client.get_latest_versions(m), "get_latest_versions is empty")

    def read_download_uri():
        check(client.get_model_version_download_uri(m, "1"), "download uri")

    def create_run():
        mine["run"] = client.create_run(e, run_name=key).info.run_id

    def log_batch():
        now = int(time.time() * 1000)
        client.log_batch(
            r1,
            metrics=[Metric(f"b-{key}", 3.0, now, 0)],
            params=[Param(f"bp-{key}", "1")],
            tags=[RunTag(f"bt-{key}", "1")],
        )

    def create_version():
        mine["version"] = register_version(m, r1)

    def rename_experiment():
        client.rename_experiment(e, f"{res.experiment_name}-{key}")
        client.rename_experiment(e, res.experiment_name)

    return [
        ("read", "experiments/get", read_experiment),
        ("read", "experiments/get-by-name", read_by_name),
        ("read", "runs/get", read_run),
        ("read", "metrics/get-history", read_history),
        ("read", "artifacts list", list_artifacts),
        ("read", "artifact download", download_artifact),
        ("read", "registered-models/get", read_model),
        ("read", "model-versions/get", read_version),
        ("read", "registered-models/alias GET", read_alias),
        ("read", "registered-models/get-latest-versions", read_latest),
        ("read", "model-versions/get-download-uri", read_download_uri),
        ("edit", "experiments/set-experiment-tag", lambda: client.set_experiment_tag(e, f"t-{key}", "1")),
        ("edit", "runs/create", create_run),
        ("edit", "runs/log-parameter", lambda: client.log_param(r1, f"p-{key}", "1")),
        ("edit", "runs/log-metric", lambda: client.log_metric(r1, f"m-{key}", 2.0)),
        ("edit", "runs/log-batch", log_batch),
        ("edit", "runs/set-tag", lambda: client.set_tag(r1, f"t-{key}", "1")),
        ("edit", "runs/delete-tag", lambda: client.delete_tag(r1, f"t-{key}")),
        ("edit", "runs/update", lambda: client.update_run(r1, name="r1")),
        ("edit", "registered-models/update", lambda: client.update_registered_model(m, description=f"by {key}")),
        ("edit", "registered-models/set-tag", lambda: client.set_registered_model_tag(m, f"t-{key}", "1")),
        ("edit", "model-versions/update", lambda: client.update_model_version(m, "1", description=f"by {key}")),
        ("edit", "model-versions/set-tag", lambda: client.set_model_version_tag(m, "1", f"t-{key}", "1")),
        ("edit", "model-versions/transition-stage", lambda: client.transition_model_version_stage(m, "1", "Staging")),
        ("edit", "registered-models/alias POST", lambda: client.set_registered_model_alias(m, f"a-{key}", "1")),
        ("edit", "model-versions/create", create_version),
        ("edit", "experiments/update (rename and back)", rename_experiment),
        ("manage", "model-versions/delete-tag", lambda: client.delete_model_version_tag(m, "1", f"t-{key}")),
        ("manage", "registered-models/alias DELETE", lambda: client.delete_registered_model_alias(m, f"a-{key}")),
        ("manage", "model-versions/delete", lambda: client.delete_model_version(m, mine.get("version", "2"))),
        ("manage", "runs/delete", lambda: client.delete_run(mine.get("run", r2))),
        ("manage", "runs/restore", lambda: client.restore_run(mine.get("run", r2))),
        ("manage", "experiments/delete", lambda: client.delete_experiment(e)),
        ("manage", "experiments/restore", lambda: client.restore_experiment(e)),
    ]


def check_effects(res):
    section("permission effects: READ/USE read, EDIT writes, MANAGE deletes, DENY nothing")
    with signed_in(admin):
        for account, permission in effect_users():
            if permission not in ("NONE", "OWNER", "ADMIN"):
                grant(account, "experiment", res.experiment_id, permission)
                grant(account, "registered_model", res.model, permission)
    step("admin grants each user its permission on the experiment and on the model")
    tag = {"experiment_id": res.experiment_id, "key": "raw", "value": "1"}
    check_forbidden(call("POST", "/api/2.0/mlflow/experiments/set-experiment-tag", bob, json=tag), "raw READ write")
    check_forbidden(
        call("GET", "/api/2.0/mlflow/experiments/get", erin, params={"experiment_id": res.experiment_id}),
        "raw DENY read",
    )
    check_ok(call("POST", "/api/2.0/mlflow/experiments/set-experiment-tag", alice, json=tag), "raw EDIT write")
    step("raw requests: READ writes → 403, DENY reads → 403, EDIT writes → 200")

    created = {}
    for account, permission in effect_users():
        mine = created.setdefault(account.name, {})
        counts = {"allowed": 0, "denied": 0}
        with signed_in(account):
            for tier, label, operation in effect_operations(res, account, mine):
                what = f"{permission} user {account}: {label}"
                if RANK[permission] >= NEEDS[tier]:
                    expect_allowed(operation, what)
                    counts["allowed"] += 1
                else:
                    expect_denied(operation, what)
                    counts["denied"] += 1
        step(f"{permission:6s} ({account}): {counts['allowed']} allowed, {counts['denied']} refused as expected")

    # The refused writes left no trace; the allowed ones are all there.
    writers = {account.name for account, permission in effect_users() if RANK[permission] >= 2}
    with signed_in(admin):
        run = client.get_run(res.run1)
        check_eq({k[2:] for k in run.data.params if k.startswith("p-")}, writers, "who logged params")
        check_eq({k[2:] for k in run.data.metrics if k.startswith("m-")}, writers, "who logged metrics")
        check_eq({k[3:] for k in run.data.params if k.startswith("bp-")}, writers, "who logged batches")
        aliases = set(client.get_registered_model(res.model).aliases)
        check_eq(aliases, {"champ", f"a-{alice.name}"}, "aliases left (MANAGE holders deleted theirs, EDIT could not)")
        versions = {v.version for v in client.search_model_versions(f"name = '{res.model}'")}
        check_eq(versions, {"1", "2", created[alice.name]["version"]}, "versions left (only EDIT's survives)")
        check_eq(client.get_run(created[alice.name]["run"]).info.lifecycle_stage, "active", "EDIT's run not deleted")
        check_eq(client.get_experiment(res.experiment_id).lifecycle_stage, "active", "experiment restored")
    step("refused writes left nothing; allowed ones are all recorded")

    # A MANAGE holder that is not the creator grants and revokes others on that resource.
    with signed_in(frank):
        expect_denied(lambda: client.set_experiment_tag(res.experiment_id, "delegated", "1"), "frank before")
    with signed_in(carol):
        grant(frank, "experiment", res.experiment_id, "EDIT")
    with signed_in(frank):
        expect_allowed(lambda: client.set_experiment_tag(res.experiment_id, "delegated", "1"), "frank with EDIT")
    with signed_in(carol):
        revoke(frank, "experiment", res.experiment_id)
    with signed_in(frank):
        expect_denied(lambda: client.set_experiment_tag(res.experiment_id, "delegated", "2"), "frank after revoke")
    with signed_in(alice):
        expect_denied(lambda: grant(frank, "experiment", res.experiment_id, "EDIT"), "EDIT holder grants")
    step("a granted MANAGE holder grants EDIT to another user and revokes it; an EDIT holder may not grant")

    # A non-admin creator gets MANAGE on what it creates and may delete it.
    with signed_in(alice):
        own = client.create_experiment(f"auth-alice-{SUFFIX}")
        check_eq(permission_of(alice, "experiment", own), ("MANAGE", True), "alice on her own experiment")
        run_id = client.create_run(own).info.run_id
        client.delete_run(run_id)
    with signed_in(bob):
        expect_denied(lambda: client.set_experiment_tag(own, "k", "v"), "bob writes in alice's experiment")
        check_eq(client.get_experiment(own).experiment_id, own, "bob reads alice's experiment (default READ)")
    with signed_in(alice):
        client.delete_experiment(own)
    step("a user's own experiment: MANAGE for her (delete run/experiment), default READ for others")
    return created


def check_rename_and_delete():
    section("rename and delete: EDIT renames, MANAGE deletes, grants follow the model")
    experiment_name = f"auth-rename-{SUFFIX}"
    model_name = f"auth-rename-{SUFFIX}"
    with signed_in(owner):
        experiment_id = client.create_experiment(experiment_name)
        client.create_registered_model(model_name)
    with signed_in(admin):
        for resource_type, resource_id in (("experiment", experiment_id), ("registered_model", model_name)):
            grant(alice, resource_type, resource_id, "EDIT")
            grant(bob, resource_type, resource_id, "READ")
    with signed_in(bob):
        expect_denied(lambda: client.rename_experiment(experiment_id, f"{experiment_name}-bob"), "READ renames exp")
        expect_denied(lambda: client.rename_registered_model(model_name, f"{model_name}-bob"), "READ renames model")
    with signed_in(alice):
        client.rename_experiment(experiment_id, f"{experiment_name}-2")
        check_eq(client.get_experiment(experiment_id).name, f"{experiment_name}-2", "renamed experiment")
        check_eq(permission_of(alice, "experiment", experiment_id), ("EDIT", True), "grant after experiment rename")
        renamed = f"{model_name}-2"
        client.rename_registered_model(model_name, renamed)
        check_eq(client.get_registered_model(renamed).name, renamed, "renamed model")
        check_eq(permission_of(alice, "registered_model", renamed), ("EDIT", True), "alice's grant follows rename")
        client.set_registered_model_tag(renamed, "after-rename", "1")
    with signed_in(admin):
        check_eq(permission_of(owner, "registered_model", renamed), ("MANAGE", True), "owner's grant follows rename")
        check(("registered_model", model_name) not in permission_rows(alice), "grant left on the old name")
    step("EDIT renames experiment and model (READ may not); model grants move to the new name")

    with signed_in(alice):
        expect_denied(lambda: client.delete_registered_model(renamed), "EDIT deletes model")
        expect_denied(lambda: client.delete_experiment(experiment_id), "EDIT deletes experiment")
    with signed_in(owner):
        client.delete_registered_model(renamed)
        client.delete_experiment(experiment_id)
    with signed_in(admin):
        with expect_mlflow_error("RESOURCE_DOES_NOT_EXIST", "deleted model"):
            client.get_registered_model(renamed)
        check(("registered_model", renamed) not in permission_rows(alice), "grant left on a deleted model")
        check(("registered_model", renamed) not in permission_rows(owner), "creator grant left on a deleted model")
    step("EDIT may not delete; MANAGE (creator) deletes; deleting a model removes its grants")


def check_search_filtering():
    section("search filtering: unreadable rows silently dropped")
    prefix = f"auth-search-{SUFFIX}-"
    names = {kind: f"{prefix}{kind}" for kind in ("read", "deny", "none")}
    experiment_ids, run_ids = {}, {}
    with signed_in(owner):
        for kind, name in names.items():
            experiment_ids[kind] = client.create_experiment(name)
            run_ids[kind] = client.create_run(experiment_ids[kind]).info.run_id
            log_model_file(run_ids[kind])
            client.create_registered_model(name)
            register_version(name, run_ids[kind])
    with signed_in(admin):
        for kind, permission in (("read", "READ"), ("deny", "DENY")):
            grant(frank, "experiment", experiment_ids[kind], permission)
            grant(frank, "registered_model", names[kind], permission)
        every = client.search_experiments(filter_string=f"name LIKE '{prefix}%'")
        check_eq({e.name for e in every}, set(names.values()), "admin sees every experiment")
    step("owner created 3 experiments/models; frank: READ on one, DENY on one, nothing on one")

    readable = {names["read"], names["none"]}
    with signed_in(frank):
        found = client.search_experiments(filter_string=f"name LIKE '{prefix}%'")
        check_eq({e.name for e in found}, readable, "search_experiments drops the DENY experiment")
        models = client.search_registered_models(filter_string=f"name LIKE '{prefix}%'")
        check_eq({m.name for m in models}, readable, "search_registered_models drops the DENY model")
        check_eq(client.search_model_versions(f"name = '{names['deny']}'"), [], "versions of the DENY model")
        check_eq(
            [v.version for v in client.search_model_versions(f"name = '{names['read']}'")],
            ["1"],
            "versions of the READ model",
        )
        runs = client.search_runs(list(experiment_ids.values()))
        check_eq({r.info.run_id for r in runs}, {run_ids["read"], run_ids["none"]}, "search_runs drops DENY")
        check_eq(client.search_runs([experiment_ids["deny"]]), [], "search_runs over only the DENY experiment")
        expect_denied(lambda: client.get_experiment(experiment_ids["deny"]), "get the DENY experiment")
        expect_denied(lambda: client.get_registered_model(names["deny"]), "get the DENY model")
        expect_denied(lambda: client.get_run(run_ids["deny"]), "get a run of the DENY experiment")
    step("experiments, models, versions and runs searches leave out the DENY rows (no 403); gets → 403")


# ---------------------------------------------------------------------------------------
# okla-registry extensions (beyond MLflow; off unless OKLA_EXTENSIONS=1)
# ---------------------------------------------------------------------------------------


def check_tokens(res):
    section("API tokens (okla)")
    now = int(time.time() * 1000)
    response = call("POST", "/api/okla/v1/tokens", alice, json={"name": f"ci-{SUFFIX}", "expires_in_days": 30})
    body = check_ok(response, "create a token")
    token, secret = body["token"], body["secret"]
    check(isinstance(secret, str) and secret.startswith("okla_"), f"secret {secret!r}")
    check_eq((token["name"], token["username"]), (f"ci-{SUFFIX}", alice.name), "token name/username")
    check(abs(token["created_time"] - now) < 600_000, f"created_time {token['created_time']} vs now {now}")
    lifetime = token["expires_time"] - token["created_time"]
    check(abs(lifetime - 30 * 86_400_000) < 120_000, f"expires_time is not 30 days later: {lifetime} ms")
    listed = check_ok(call("GET", "/api/okla/v1/tokens", alice), "list tokens")
    check(token["id"] in [t["id"] for t in listed["tokens"]], f"token {token['id']} not listed: {listed}")
    check(secret not in call("GET", "/api/okla/v1/tokens", alice).text, "the token list shows the secret")
    check(all("secret" not in t for t in listed["tokens"]), f"a listed token has a secret field: {listed}")
    step("POST /api/okla/v1/tokens → token + okla_ secret (30 days); the list never shows a secret")

    with signed_in(token=secret):
        check_eq(client.get_experiment(res.experiment_id).experiment_id, res.experiment_id, "token reads")
        run_id = client.create_run(res.experiment_id, run_name="by-token").info.run_id
        client.log_metric(run_id, "token-metric", 1.0)
        expect_denied(lambda: client.delete_run(run_id), "token of an EDIT user deletes a run")
        expect_denied(lambda: client.delete_experiment(res.experiment_id), "token of an EDIT user deletes the exp.")
    current = check_ok(call("GET", "/api/2.0/mlflow/users/current", token=secret), "users/current with the token")
    check_eq(current["user"]["username"], alice.name, "the token acts as its owner")
    step("the mlflow client with only MLFLOW_TRACKING_TOKEN acts with the owner's rights (EDIT: no delete)")

    deleted = call("DELETE", f"/api/okla/v1/tokens/{quote(token['id'], safe='')}", alice)
    check_eq(check_ok(deleted, "revoke the token"), {}, "revoke answer")
    deadline = time.time() + 65
    while True:
        response = call("GET", "/api/2.0/mlflow/experiments/get", token=secret, params={"experiment_id": "0"})
        if response.status_code == 401 or time.time() > deadline:
            break
        check(response.status_code == 200, f"revoked token: unexpected {describe(response)}")
        time.sleep(2)
    check_unauthenticated(response, "revoked token (within 65 s)")
    with signed_in(token=secret):
        with expect_mlflow_error("UNAUTHENTICATED", "client with a revoked token"):
            client.get_experiment(res.experiment_id)
    step("DELETE /api/okla/v1/tokens/{id} → {}; the token then gets 401")


def check_deployments(res):
    section("deployments need MANAGE; the history records the authenticated actor (okla)")
    model = f"auth-deploy-{SUFFIX}"
    with signed_in(owner):
        client.create_registered_model(model)
        check_eq([register_version(model, res.run1) for _ in range(2)], ["1", "2"], "deploy model versions")
    with signed_in(admin):
        grant(alice, "registered_model", model, "EDIT")
        grant(carol, "registered_model", model, "MANAGE")

    path = f"/api/okla/v1/deployments/{quote(model, safe='')}"
    before = check_ok(call("GET", path, alice), "GET the deployment as EDIT")
    refused = [
        ("PUT", path, {"routes": [{"version": 1, "weight": 100}]}),
        ("DELETE", path, {}),
        ("POST", f"{path}/rollback", {"reason": "auth test"}),
    ]
    for method, target, body in refused:
        check_forbidden(call(method, target, alice, json=body), f"{method} {target} as EDIT")
    check_eq(check_ok(call("GET", path, alice), "GET after refusals"), before, "deployment after refused changes")
    step("EDIT on the model: PUT/DELETE/rollback of its deployment → 403, nothing changed")

    history_path = f"/api/okla/v1/models/{quote(model, safe='')}/history"
    spoof = {"x-okla-actor": "canary-gate"}
    split = {"routes": [{"version": 1, "weight": 50}, {"version": 2, "weight": 50}]}
    check_ok(call("PUT", path, carol, json=split, headers=spoof), "PUT the deployment as MANAGE")
    check_ok(call("POST", f"{path}/rollback", carol, json={"reason": "auth test"}, headers=spoof), "rollback")
    check_ok(call("DELETE", path, carol, json={}, headers=spoof), "DELETE the deployment as MANAGE")
    history = check_ok(call("GET", history_path, admin), "model history")["history"]
    deployment_entries = [entry for entry in history if entry["kind"].startswith("deployment")]
    check_eq(
        sorted(entry["kind"] for entry in deployment_entries),
        ["deployment", "deployment_delete", "deployment_rollback"],
        f"deployment history entries: {history}",
    )
    check_eq({entry["actor"] for entry in deployment_entries}, {carol.name}, "actor of carol's deployment changes")
    step("MANAGE on the model: PUT, rollback, DELETE → 200; history actor is carol, not the x-okla-actor header")

    last_id = max((entry["id"] for entry in history), default=0)
    body = {"name": model, "alias": "candidate", "version": "2"}
    check_ok(call("POST", "/api/2.0/mlflow/registered-models/alias", alice, json=body, headers=spoof), "alias")
    history = check_ok(call("GET", history_path, admin), "model history")["history"]
    new_entries = [entry for entry in history if entry["id"] > last_id]
    check(new_entries, f"setting an alias recorded no history entry: {history}")
    check_eq({entry["actor"] for entry in new_entries}, {alice.name}, "actor of alice's alias change")
    check("canary-gate" not in {entry["actor"] for entry in history}, f"a spoofed actor in the history: {history}")
    step("alice sends x-okla-actor: canary-gate with an alias change; the history says alice")


def check_node_reports():
    section("node reports are for node credentials only (okla)")
    node_id = f"auth-node-{SUFFIX}"
    report = {"http_url": "http://127.0.0.1:9", "report_seconds": 5.0, "models": []}
    for account in (admin, alice):
        check_forbidden(call("PUT", f"/api/okla/v1/nodes/{node_id}", account, json=report), f"{account} reports a node")
    nodes = call("GET", "/api/okla/v1/nodes", admin)
    check_ok(nodes, "list nodes")
    check(node_id not in nodes.text, f"a refused report was stored: {nodes.text[:300]}")
    step("PUT /api/okla/v1/nodes/{id} by a user (even admin) → 403, nothing stored")


def check_no_lockout():
    section("wrong passwords: always 401, slowed down, never a lockout (okla)")

    def wrong(attempt):
        started = time.time()
        response = call("GET", "/api/2.0/mlflow/users/current", basic=(frank.name, f"wrong-password-{attempt:02d}"))
        return response, time.time() - started

    # Ten at a time, as a guesser would: the delay is per client address, so it slows every one.
    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(wrong, range(20)))
    for attempt, (response, _) in enumerate(results):
        check_unauthenticated(response, f"wrong password #{attempt + 1}")
    slowest = max(elapsed for _, elapsed in results)
    check(slowest >= 1.0, f"repeated failures are slowed down (slowest attempt took {slowest:.2f} s)")
    deadline = time.time() + 30
    while True:
        response = call("GET", "/api/2.0/mlflow/users/current", frank)
        if response.status_code == 200 or time.time() > deadline:
            break
        time.sleep(1)
    check_eq(check_ok(response, "the right password after 20 wrong ones (within 30 s)")["user"]["username"],
             frank.name, "users/current")
    step(f"20 wrong passwords → 20 × 401 (no 429), the slowest after {slowest:.1f} s; the right password then works")


# ---------------------------------------------------------------------------------------


def main():
    global TRACKING_URI, client, auth, admin
    TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI", "").rstrip("/")
    admin_password = os.environ.get("OKLA_ADMIN_PASSWORD")
    if not TRACKING_URI or not admin_password:
        print("set MLFLOW_TRACKING_URI (the server under test) and OKLA_ADMIN_PASSWORD", file=sys.stderr)
        return 2
    for name in CREDENTIAL_VARIABLES:  # only what signed_in puts there
        os.environ.pop(name, None)
    admin = Account("admin", password=admin_password, name=os.environ.get("OKLA_ADMIN_USERNAME", "admin"))
    mlflow.set_tracking_uri(TRACKING_URI)
    client = MlflowClient(tracking_uri=TRACKING_URI, registry_uri=TRACKING_URI)
    try:
        auth = get_app_client("basic-auth", tracking_uri=TRACKING_URI)
    except ImportError as error:  # the client's module imports the server app, which needs Flask-WTF
        print(f"install mlflow[auth] (Flask-WTF) in this venv: {error}", file=sys.stderr)
        return 2
    print(
        f"mlflow {mlflow.__version__} client against {TRACKING_URI} as {admin.name} "
        f"(suffix {SUFFIX}, okla extensions {'on' if OKLA_EXTENSIONS else 'off'})",
        flush=True,
    )
    current = call("GET", "/api/2.0/mlflow/users/current", admin)
    if current.status_code != 200 or not (json_of(current) or {}).get("user", {}).get("is_admin"):
        print(f"the admin credentials do not work: {describe(current)}", file=sys.stderr)
        return 2

    started = time.time()
    try:
        timed(check_authentication)
        timed(check_users)
        timed(check_grants)
        res = timed(setup_effects)
        timed(check_effects, res)
        timed(check_rename_and_delete)
        timed(check_search_filtering)
        if OKLA_EXTENSIONS:
            timed(check_tokens, res)
            timed(check_deployments, res)
            timed(check_node_reports)
            timed(check_no_lockout)
    except Exception as error:  # report any failure with the step it happened in
        print(f"\nFAILED after step {_step_count}: {type(error).__name__}: {error}", file=sys.stderr)
        traceback.print_exc()
        return 1
    finally:
        secrets_file = os.environ.get("OKLA_SECRETS_FILE")
        if secrets_file:
            Path(secrets_file).write_text("".join(f"{secret}\n" for secret in sorted(SECRETS)))
    print(f"\nOK: {_step_count} steps passed in {time.time() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
