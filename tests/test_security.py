"""Security of a production install: settings, secrets, CSRF on every write, login throttling, upload limits."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys

import pytest
import yaml
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from annotate.models import StepLabel, Trace
from tests.conftest import REPO_ROOT
from tests.factories import make_project, make_user
from tests.test_permission_walk import EXPECTATIONS, World, _url, build_world, is_api

PASSWORD = "pw-for-tests-1"


def _production_env(tmp_path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO", "SECRET", "DATABASE", "SECURE", "STEPLENS", "CELERY"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_DEBUG="0",
        ALLOWED_HOSTS="steplens.example.org",
        STEPLENS_VAR_DIR=str(tmp_path),
        # Not the checkout's local .env (scripts/local_env.py), which turns debug on.
        STEPLENS_ENV_FILE=str(tmp_path / "no.env"),
    )
    env.update(extra)
    return env


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- settings and secrets -------------------------------------------------------------------------


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = _manage(_production_env(tmp_path), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    env = _production_env(tmp_path)
    del env["SECRET_KEY"]
    result = _manage(env, "check")
    assert result.returncode != 0
    assert "SECRET_KEY must be set in the environment" in result.stderr
    assert not (tmp_path / "secret_key").exists()  # no key is made up for production


def test_a_generated_local_env_runs_manage_py_without_prefixes(tmp_path):
    env_file = tmp_path / ".env"
    subprocess.run(
        [sys.executable, "scripts/local_env.py", str(env_file)], cwd=REPO_ROOT, check=True
    )
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    env = _production_env(tmp_path, STEPLENS_ENV_FILE=str(env_file))
    for name in ("SECRET_KEY", "DJANGO_DEBUG", "ALLOWED_HOSTS"):
        del env[name]
    result = _manage(env, "shell", "-c", "from django.conf import settings; print(settings.DEBUG)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "True"
    first_key = env_file.read_text()
    subprocess.run(  # run again: the file, and so the key and the sessions, are kept
        [sys.executable, "scripts/local_env.py", str(env_file)], cwd=REPO_ROOT, check=True
    )
    assert env_file.read_text() == first_key


def test_production_env_file_without_its_own_secret_refuses_to_start(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text((REPO_ROOT / ".env.example").read_text())  # SECRET_KEY= left blank
    env = _production_env(tmp_path, STEPLENS_ENV_FILE=str(env_file))
    del env["SECRET_KEY"], env["DJANGO_DEBUG"]
    result = _manage(env, "check")
    assert result.returncode != 0
    assert "SECRET_KEY must be set in the environment" in result.stderr


def _settings_variables() -> set[str]:
    text = (REPO_ROOT / "config" / "settings.py").read_text()
    return set(re.findall(r'(?:os\.environ\.get|_env_bool|_env_list)\(\s*"([A-Z0-9_]+)"', text))


def test_env_example_documents_every_variable_settings_read():
    names = _settings_variables()
    assert {"SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL"} <= names
    example = (REPO_ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z0-9_]+)=", example, flags=re.M))
    documented |= set(re.findall(r"\b([A-Z0-9_]+)=", example))
    assert not names - documented, f"not in .env.example: {sorted(names - documented)}"


def test_no_secret_is_written_in_the_repository():
    example = (REPO_ROOT / ".env.example").read_text()
    assert re.search(r"^SECRET_KEY=$", example, flags=re.M)
    assert re.search(r"^POSTGRES_PASSWORD=$", example, flags=re.M)
    compose = (REPO_ROOT / "docker-compose.yml").read_text()
    assert "SECRET_KEY: ${SECRET_KEY:-}" in compose
    settings_text = (REPO_ROOT / "config" / "settings.py").read_text()
    assert not re.search(r"SECRET_KEY\s*=\s*['\"]", settings_text)
    assert ".env" in (REPO_ROOT / ".gitignore").read_text().split()


@pytest.fixture
def compose() -> dict:
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    result = subprocess.run(
        ["docker-compose", "-f", "docker-compose.yml", "config"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SECRET_KEY": "x", "POSTGRES_PASSWORD": "y"},
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_runs_the_production_shape(compose):
    services = compose["services"]
    assert {"web", "worker-gpu", "worker-cpu", "redis", "postgres", "migrate"} <= set(services)
    assert "gunicorn" in services["web"]["command"]
    gpu = services["worker-gpu"]
    assert "interactive,bulk" in gpu["command"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert "--appendonly" in services["redis"]["command"]
    assert any("/var/lib/postgresql/data" in v for v in map(str, services["postgres"]["volumes"]))
    for name in ("web", "worker-gpu", "worker-cpu"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
        assert services[name]["environment"]["DJANGO_DEBUG"] == "0"
    for name in ("web", "worker-gpu", "worker-cpu", "redis", "postgres"):
        assert "healthcheck" in services[name], name
    assert "migrate" in services["migrate"]["command"]


@pytest.fixture
def world(tmp_path, settings) -> World:
    return build_world(tmp_path, settings)


# --- CSRF -----------------------------------------------------------------------------------------

WRITES = [
    (path, method)
    for path, rows in EXPECTATIONS.items()
    for method in rows
    if method != "GET" and path != "/api/auth/token/"  # a password exchange: no session, no cookie
]


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "method"), WRITES)
def test_every_write_needs_the_csrf_token(world: World, path: str, method: str):
    """A page or a session-authenticated API call without the CSRF token is refused, and changes nothing."""
    cache.clear()
    api = is_api(path)
    client = (APIClient if api else Client)(enforce_csrf_checks=True)
    client.force_login(world.users["admin"])
    labels_before = list(StepLabel.objects.values_list("pk", "value", "note"))
    response = getattr(client, method.lower())(_url(path, world), {})
    assert response.status_code == 403, (method, path, response.status_code)
    assert list(StepLabel.objects.values_list("pk", "value", "note")) == labels_before


@pytest.mark.django_db
def test_a_write_with_the_csrf_token_goes_through(world: World):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.users["annotator"])
    client.get(f"/t/{world.trace.pk}/")
    token = client.cookies["csrftoken"].value
    response = client.post(
        f"/t/{world.trace.pk}/steps/1/label/", {"value": "-1"}, headers={"X-CSRFToken": token}
    )
    assert response.status_code == 302
    assert StepLabel.objects.get(step__index=1).value == -1


# --- login throttling -------------------------------------------------------------------------------


@pytest.fixture
def fresh_cache():
    cache.clear()
    yield
    cache.clear()


def _log_in(client: Client, username: str, password: str):
    return client.post("/accounts/login/", {"username": username, "password": password})


@pytest.mark.django_db
def test_five_wrong_passwords_lock_the_account_with_a_clear_message(fresh_cache):
    make_user("alice", password=PASSWORD)
    make_user("bob", password=PASSWORD)
    client = Client()
    for _ in range(5):
        assert _log_in(client, "alice", "guess").status_code == 200  # the form, with its error
    locked = _log_in(client, "alice", PASSWORD)  # the right password, too late
    assert locked.status_code == 429
    assert "Too many failed log-ins" in locked.content.decode()
    assert int(locked["Retry-After"]) == 900
    assert "_auth_user_id" not in client.session
    # The lock is on alice (and this address is far from its own limit): bob logs in.
    assert _log_in(Client(), "bob", PASSWORD).status_code == 302
    # The API's token exchange is locked too, with the same message.
    api = APIClient().post(
        "/api/auth/token/", {"username": "alice", "password": PASSWORD}, format="json"
    )
    assert api.status_code == 429
    assert "Too many failed log-ins" in api.json()["detail"]
    # When the window has passed (the cache entry expired), alice is back.
    cache.clear()
    assert _log_in(Client(), "alice", PASSWORD).status_code == 302


@pytest.mark.django_db
def test_a_successful_log_in_resets_the_count(fresh_cache):
    make_user("carol", password=PASSWORD)
    for _ in range(4):
        _log_in(Client(), "carol", "guess")
    assert _log_in(Client(), "carol", PASSWORD).status_code == 302
    for _ in range(4):
        _log_in(Client(), "carol", "guess")
    assert _log_in(Client(), "carol", PASSWORD).status_code == 302


@pytest.mark.django_db
def test_token_guessing_through_the_api_locks_too(fresh_cache):
    make_user("dave", password=PASSWORD)
    api = APIClient()
    for _ in range(5):
        wrong = api.post("/api/auth/token/", {"username": "dave", "password": "x"}, format="json")
        assert wrong.status_code == 400
    assert (
        api.post("/api/auth/token/", {"username": "dave", "password": PASSWORD}).status_code == 429
    )


@pytest.mark.django_db
def test_one_address_trying_many_usernames_is_locked(fresh_cache, settings):
    settings.LOGIN_FAILURES_PER_IP = 3
    make_user("erin", password=PASSWORD)
    attacker = Client(REMOTE_ADDR="203.0.113.9")
    for name in ("u1", "u2", "u3"):
        attacker.post("/accounts/login/", {"username": name, "password": "x"})
    assert (
        attacker.post("/accounts/login/", {"username": "erin", "password": PASSWORD}).status_code
        == 429
    )
    elsewhere = Client(REMOTE_ADDR="198.51.100.7")
    assert (
        elsewhere.post("/accounts/login/", {"username": "erin", "password": PASSWORD}).status_code
        == 302
    )


# --- upload limits and headers --------------------------------------------------------------------


@pytest.mark.django_db
def test_an_oversized_import_is_refused_with_a_clear_error(settings, repo_root):
    settings.IMPORT_MAX_BYTES = 2000
    admin = make_user()
    project = make_project("big", members={admin: "admin"})
    content = (repo_root / "data" / "processbench_sample.jsonl").read_bytes()[:5000]
    api = APIClient()
    api.force_login(admin)
    response = api.post(
        "/api/imports/",
        {
            "project": "big",
            "format": "processbench",
            "file": SimpleUploadedFile("pb.jsonl", content),
        },
        format="multipart",
    )
    assert response.status_code == 413
    assert "imports are limited to" in response.json()["detail"]
    page = Client()
    page.force_login(admin)
    response = page.post(
        "/import/",
        {
            "project": "big",
            "format": "processbench",
            "file": SimpleUploadedFile("pb.jsonl", content),
        },
    )
    assert response.status_code == 400
    assert "the largest import is" in response.content.decode()
    assert not Trace.objects.filter(project=project).exists()


@pytest.mark.django_db
def test_an_oversized_form_body_is_a_400_not_a_server_error(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    user = make_user()
    project = make_project(members={user: "annotator"})
    from tests.factories import make_trace

    trace = make_trace(project)
    client = Client(raise_request_exception=False)
    client.force_login(user)
    response = client.post(f"/t/{trace.pk}/steps/0/label/", {"note": "x" * 20_000})
    assert response.status_code == 400
    assert not StepLabel.objects.exists()


@pytest.mark.django_db
def test_pages_forbid_framing_and_sniffing():
    user = make_user()
    client = Client()
    client.force_login(user)
    response = client.get("/")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.django_db
def test_a_large_body_is_refused_before_anything_parses_it(settings):
    """Item 9 of "Hardening": a 50 MB multipart POST to the login page was parsed (the 10 MB
    limit covers form fields, not files), by the login throttle, before CSRF was checked."""
    settings.STEPLENS_MAX_BODY_BYTES = 1024 * 1024
    client = Client(raise_request_exception=False)
    body = b'--xyz\r\nContent-Disposition: form-data; name="f"; filename="a"\r\n\r\n'
    body += b"x" * (2 * 1024 * 1024) + b"\r\n--xyz--\r\n"
    response = client.generic(
        "POST", "/accounts/login/", body, content_type="multipart/form-data; boundary=xyz"
    )
    assert response.status_code == 413
    assert "larger than" in response.content.decode()
    # The import endpoints keep their own, larger limit (STEPLENS_IMPORT_MAX_BYTES).
    response = client.generic(
        "POST", "/api/imports/", body, content_type="multipart/form-data; boundary=xyz"
    )
    assert response.status_code != 413


@pytest.mark.django_db
def test_a_forged_log_in_is_refused_by_csrf_before_the_throttle_reads_it():
    client = Client(enforce_csrf_checks=True)
    response = client.post("/accounts/login/", {"username": "x", "password": "y"})
    assert response.status_code == 403


@pytest.mark.django_db
def test_pages_carry_a_content_security_policy_and_images_come_from_allowed_hosts(settings):
    """Item 5 of "Hardening": no CSP, and problem images loaded from any host (an annotator's
    address went to whoever hosts them)."""
    from annotate.models import Problem
    from config.csp import content_security_policy
    from tests.factories import make_trace

    settings.STEPLENS_IMAGE_HOSTS = ["images.example.org"]
    settings.CONTENT_SECURITY_POLICY = content_security_policy(settings.STEPLENS_IMAGE_HOSTS)
    user = make_user()
    project = make_project(members={user: "annotator"})
    trace = make_trace(project)
    Problem.objects.filter(pk=trace.problem_id).update(
        images=["https://images.example.org/fig1.png", "https://tracker.example.com/pixel.png"]
    )
    client = Client()
    client.force_login(user)
    response = client.get(f"/t/{trace.pk}/")
    policy = response["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";") if d.strip())
    assert directives["default-src"] == "'self'"
    assert "'unsafe-inline'" not in directives["script-src"]
    assert directives["img-src"].split() == ["'self'", "data:", "https://images.example.org"]
    html = response.content.decode()
    assert 'src="https://images.example.org/fig1.png"' in html
    assert 'src="https://tracker.example.com/pixel.png"' not in html
    assert "tracker.example.com is not on the list of allowed image hosts" in html


@pytest.mark.django_db
def test_behind_the_proxy_one_attacker_does_not_lock_everyone_out(fresh_cache, settings):
    """Item 10 of "Hardening": behind the documented TLS proxy every user shares its address, so
    101 failures from one attacker locked everybody out, superusers included. The client's
    address is read from X-Forwarded-For only when the peer is a configured proxy."""
    settings.LOGIN_FAILURES_PER_IP = 3
    settings.STEPLENS_TRUSTED_PROXIES = ["10.0.0.2"]
    make_user("root", password=PASSWORD, is_superuser=True)
    attacker = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.9")
    for name in ("u1", "u2", "u3", "u4"):
        attacker.post("/accounts/login/", {"username": name, "password": "x"})
    assert (
        attacker.post("/accounts/login/", {"username": "root", "password": PASSWORD}).status_code
        == 429
    )
    colleague = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert (
        colleague.post("/accounts/login/", {"username": "root", "password": PASSWORD}).status_code
        == 302
    )
    # From a peer that is not a proxy, X-Forwarded-For is the client's word: not believed.
    spoofer = Client(REMOTE_ADDR="203.0.113.50", HTTP_X_FORWARDED_FOR="198.51.100.7")
    for name in ("v1", "v2", "v3"):
        spoofer.post("/accounts/login/", {"username": name, "password": "x"})
    assert (
        spoofer.post("/accounts/login/", {"username": "root", "password": PASSWORD}).status_code
        == 429
    )
    assert (
        colleague.post("/accounts/login/", {"username": "root", "password": PASSWORD}).status_code
        == 302
    )


@pytest.mark.django_db(transaction=True)
def test_parallel_guesses_do_not_get_past_the_limit(fresh_cache):
    """Item 11: 13 wrong passwords sent at once got past a limit of 5, and the 14th, correct,
    got a token. Each attempt is counted before its password is checked, atomically."""
    from tests.reliability.test_concurrent_labels import _run_at_once

    make_user("fran", password=PASSWORD)

    def guess() -> int:
        return (
            APIClient()
            .post("/api/auth/token/", {"username": "fran", "password": "wrong"}, format="json")
            .status_code
        )

    statuses = _run_at_once([guess] * 13)
    assert statuses.count(400) <= 5  # at most 5 were checked at all; the rest refused (429)
    right = APIClient().post(
        "/api/auth/token/", {"username": "fran", "password": PASSWORD}, format="json"
    )
    assert right.status_code == 429


@pytest.mark.django_db
@pytest.mark.parametrize("entry", ["api", "page"])
def test_an_attempt_past_the_limit_that_raced_the_check_is_refused_as_such(
    fresh_cache, monkeypatch, entry
):
    """Attempts sent at once all pass the middleware's look at the count before any of them has
    counted; the ones counted past the limit are refused unchecked, and must say so (429, the
    lock-out message), not "wrong password" (400, as 6 of 13 parallel guesses once did)."""
    from config import login_throttle

    make_user("gil", password=PASSWORD)
    for _ in range(5):
        login_throttle._bump(login_throttle._user_key("gil"))
    # As for a request that passed the look at the count before the other five counted:
    monkeypatch.setattr(login_throttle, "is_locked", lambda **kwargs: False)
    if entry == "api":
        response = APIClient().post(
            "/api/auth/token/", {"username": "gil", "password": PASSWORD}, format="json"
        )
        assert response.status_code == 429
        assert "Too many failed log-ins" in response.json()["detail"]
    else:
        response = _log_in(Client(), "gil", PASSWORD)
        assert response.status_code == 429
        assert "Too many failed log-ins" in response.content.decode()
    assert response["Retry-After"] == str(login_throttle.lockout_seconds())


def _gunicorn_answer(tmp_path, *, allow: str, proto: str | None) -> int:
    """Start gunicorn with production settings and config/gunicorn.conf.py, trusting forwarded
    headers from `allow`; the status of GET /accounts/login/ sent from 127.0.0.1."""
    import urllib.error
    import urllib.request

    from tests.servers import free_port, gunicorn

    port = free_port()
    env = _production_env(
        tmp_path,
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS="1",
        GUNICORN_FORWARDED_ALLOW_IPS=allow,
        ALLOWED_HOSTS="127.0.0.1",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )
    with gunicorn(env, port=port):
        headers = {"X-Forwarded-Proto": proto} if proto else {}
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/accounts/login/", headers=headers
        )

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
                return None

        try:
            return urllib.request.build_opener(NoRedirect).open(request, timeout=5).status
        except urllib.error.HTTPError as exc:
            return exc.code


def test_only_the_proxy_may_say_a_request_came_over_https(tmp_path):
    """Item 13: Django trusted X-Forwarded-Proto from any client. Now gunicorn alone decides, from
    the addresses in GUNICORN_FORWARDED_ALLOW_IPS (the proxy's)."""
    assert _gunicorn_answer(tmp_path, allow="127.0.0.1", proto="https") == 200
    assert _gunicorn_answer(tmp_path, allow="10.9.9.9", proto="https") == 301  # not our proxy
    assert _gunicorn_answer(tmp_path, allow="127.0.0.1", proto=None) == 301
