"""The web process must never import torch: a web deployment installs without the worker extra."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import sys
import django
django.setup()
from django.urls import get_resolver
import config.urls, config.wsgi
get_resolver().url_patterns  # every view and API module is imported
import scoring.tasks, scoring.engine, scoring.api, scoring.views, annotate.api, annotate.views
import review.api, review.views, snapshots.api, snapshots.views, snapshots.training
from scoring.prm.training import TrainParams
TrainParams.from_dict({"epochs": 2})  # the web checks a training request's parameters
from django.core.management import call_command
call_command("check")
heavy = sorted(m for m in ("torch", "transformers", "tokenizers") if m in sys.modules)
print("HEAVY:" + ",".join(heavy))
"""


def test_web_process_does_not_import_torch():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": "tests-only",
        "DJANGO_DEBUG": "0",
    }
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert out.strip().splitlines()[-1] == "HEAVY:", out
