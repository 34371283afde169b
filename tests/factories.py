"""Test data made through the real services (as a user would make it), for tests that need no file."""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Sequence

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser

from annotate import services
from annotate.imports import problem_content_sha256, traces_import
from annotate.models import LabelScheme, Problem, Project, Role, Step, Trace

_counter = itertools.count(1)


def make_user(
    username: str | None = None, *, password: str = "pw-for-tests-1", **extra: object
) -> AbstractBaseUser:
    username = username or f"user{next(_counter)}"
    return get_user_model().objects.create_user(username=username, password=password, **extra)


def make_project(
    slug: str | None = None,
    *,
    members: dict[AbstractBaseUser, str] | None = None,
    label_scheme: str = LabelScheme.TERNARY,
    overlap: int = 1,
    blind: bool = False,
) -> Project:
    project = services.project_create(
        slug=slug or f"project-{next(_counter)}",
        label_scheme=label_scheme,
        overlap=overlap,
        blind=blind,
    )
    for user, role in (members or {}).items():
        services.membership_set(project=project, user=user, role=Role(role))
    return project


def make_trace(
    project: Project,
    *,
    steps: Sequence[str] = ("Step one.", "Step two.", "Step three."),
    problem_text: str | None = None,
    external_id: str | None = None,
    parts: Sequence[str] | None = None,
) -> Trace:
    text = problem_text or f"Problem {next(_counter)}: what is $1+1$?"
    problem, _ = Problem.objects.get_or_create(
        project=project,
        content_sha256=problem_content_sha256(text=text, images=[], table=None),
        defaults={"text": text, "reference_answer": "2"},
    )
    trace = Trace.objects.create(
        project=project,
        problem=problem,
        generator="test-generator",
        source="test",
        external_id=external_id or f"t{next(_counter)}",
    )
    Step.objects.bulk_create(
        Step(trace=trace, index=i, text=body, part=(parts[i] if parts else "response"))
        for i, body in enumerate(steps)
    )
    return trace


def import_processbench_sample(project: Project) -> Project:
    """The shipped ProcessBench sample (80 traces, data/processbench_sample.jsonl) imported into
    ``project`` through the real import service."""
    from pathlib import Path

    from annotate import imports

    path = Path(__file__).resolve().parents[1] / "data" / "processbench_sample.jsonl"
    with open(path, "rb") as stream:
        imports.traces_import(
            project=project, stream=stream, filename=path.name, format="processbench"
        )
    return project


def import_jsonl(project: Project, *records: dict[str, object]) -> None:
    """Import `records` in the generic JSON Lines format through the import service."""
    traces_import(
        project=project,
        stream=io.BytesIO("\n".join(json.dumps(r) for r in records).encode()),
        filename="records.jsonl",
        format="jsonl",
    )
