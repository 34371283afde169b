"""Settings for the test suite: the real settings, with a throwaway key and fast hashing."""

from __future__ import annotations

import os
import tempfile

# A developer's local .env (debug on, their SQLite file) never reaches the tests or their children.
os.environ["STEPLENS_ENV_FILE"] = ""
os.environ.setdefault("SECRET_KEY", "tests-only-not-a-secret")
os.environ.setdefault("DJANGO_DEBUG", "0")
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("STEPLENS_VAR_DIR", tempfile.mkdtemp(prefix="steplens-test-var-"))

from config.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
CELERY_TASK_ALWAYS_EAGER = True
# Static files come from the finders in tests (no collectstatic run).
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not memory, so that a worker process started by a test sees the test database.
    DATABASES["default"]["TEST"] = {"NAME": os.path.join(os.environ["STEPLENS_VAR_DIR"], "test.sqlite3")}  # noqa: F405
