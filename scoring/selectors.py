"""Reads of the model side: a trace's scores as a person may see them, worker liveness, Best-of-N."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.utils import timezone

from annotate import selectors as annotate_selectors
from annotate.models import Project, Role, Step, StepPart, Trace

from .models import Backend, RunStatus, Scorer, ScoreRun, StepScore, WorkerHeartbeat
from .prm.aggregate import Thought, group_thoughts, score_is_unknown

UserLike = User | AnonymousUser

WORKER_ALIVE_WITHIN = timedelta(seconds=30)


def scorers_for_project(*, project: Project) -> QuerySet[Scorer]:
    return Scorer.objects.filter(projects=project).order_by("name")


def scorer_list_for_user(*, user: UserLike) -> QuerySet[Scorer]:
    """Site admins: every scorer; others: the scorers of the projects they are members of."""
    if not user.is_authenticated:
        return Scorer.objects.none()
    if annotate_selectors.user_is_site_admin(user=user):
        return Scorer.objects.all().order_by("name")
    projects = annotate_selectors.project_list_for_user(user=user)
    return Scorer.objects.filter(projects__in=projects).distinct().order_by("name")


def scorers_to_choose_from(*, user: UserLike, project: Project) -> QuerySet[Scorer]:
    """Every registered scorer, for a project's admins choosing theirs (names, backends and models
    only are shown: never parameters, nor which other projects use them)."""
    annotate_selectors.project_get_for_user(user=user, slug=project.slug, min_role=Role.ADMIN)
    return Scorer.objects.all().order_by("name")


# Backends that load no model, run no remote code and open no connection: a project admin may
# register them for their project. The others (a model path on the workers, trust_remote_code,
# a URL the workers call) are a site admin's (docs/security.md).
PROJECT_ADMIN_BACKENDS = (Backend.TOOL, Backend.EXTERNAL)


def scorer_backends_for(*, user: UserLike, project: Project) -> list[Backend]:
    """The backends this user may register a new scorer with for the project (its admins)."""
    annotate_selectors.project_get_for_user(user=user, slug=project.slug, min_role=Role.ADMIN)
    if annotate_selectors.user_is_site_admin(user=user):
        return list(Backend)
    return list(PROJECT_ADMIN_BACKENDS)


def scorer_backend_check(*, user: UserLike, project: Project, backend: str) -> None:
    """Refuse (403, with the reason) a backend this user may not register for the project."""
    allowed = scorer_backends_for(user=user, project=project)
    if backend in Backend.values and backend not in allowed:
        raise PermissionDenied(
            f"Only a site admin can register a {backend} scorer (it loads a model or calls a "
            "server from the workers); project admins register "
            + " or ".join(b.value for b in allowed)
            + " scorers."
        )


def scorer_projects_visible(*, user: UserLike, scorer: Scorer) -> list[str]:
    """The slugs of a scorer's projects that this user may know of (their own; all for admins)."""
    projects = scorer.projects.all()
    if not annotate_selectors.user_is_site_admin(user=user):
        projects = projects.filter(pk__in=annotate_selectors.project_list_for_user(user=user))
    return sorted(p.slug for p in projects)


def workers_alive(*, within: timedelta = WORKER_ALIVE_WITHIN) -> list[WorkerHeartbeat]:
    return list(WorkerHeartbeat.objects.filter(last_seen__gte=timezone.now() - within))


def scores_hidden_for(*, user: UserLike, trace: Trace) -> bool:
    """Blind projects hide scores from an annotator until their first submit of this trace."""
    if not trace.project.blind:
        return False
    role = annotate_selectors.project_role(user=user, project=trace.project)
    if annotate_selectors.role_at_least(role, Role.REVIEWER):
        return False
    return not annotate_selectors.annotation_revealed(user=user, trace=trace)


@dataclass
class ScorerPanel:
    scorer: Scorer
    run: ScoreRun | None
    scores: dict[int, StepScore] = field(default_factory=dict)  # step id -> score

    @property
    def external(self) -> bool:
        return self.scorer.backend == Backend.EXTERNAL

    @property
    def status(self) -> str:
        if self.run:
            return self.run.status
        # Nothing will run an external scorer: its scores come from an import or not at all.
        return "not imported" if self.external else "missing"

    @property
    def finished(self) -> bool:
        if self.run is None:
            return self.external
        return self.run.status in (RunStatus.DONE, RunStatus.FAILED)

    @property
    def retrying(self) -> bool:
        """Running again after its worker stopped (a killed process, an expired lease)."""
        return (
            self.run is not None and self.run.status == RunStatus.RUNNING and self.run.attempts > 1
        )


@dataclass
class StepBadge:
    scorer: Scorer
    score: StepScore | None

    @property
    def bucket(self) -> int:
        """0..9, for the colour scale (red = likely wrong, green = likely right)."""
        return min(9, int(self.score.score * 10)) if self.score else 0

    @property
    def checks(self) -> list[dict[str, object]]:
        """What a checking scorer (the tool backend) checked in this step, to show on the page."""
        found = self.score.details.get("checks") if self.score is not None else None
        return [c for c in found if isinstance(c, dict)] if isinstance(found, list) else []

    @property
    def failed_checks(self) -> int:
        return sum(1 for c in self.checks if c.get("ok") is False)

    @property
    def unknown(self) -> bool:
        """The scorer gave no verdict here (the tool backend's neutral "no check")."""
        return self.score is not None and score_is_unknown(self.score.details)

    @property
    def wrong(self) -> bool:
        # The audit's rule (scoring.prm.metrics.predicted_correct): at the threshold is wrong.
        return (
            self.score is not None
            and not self.unknown
            and self.score.score <= self.scorer.threshold
        )


@dataclass
class TraceScoresView:
    trace: Trace
    hidden: bool
    panels: list[ScorerPanel]
    workers: list[WorkerHeartbeat]
    steps: list[Step] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return all(panel.finished for panel in self.panels)

    def step_rows(self) -> list[tuple[Step, list[StepBadge]]]:
        return [
            (step, [StepBadge(scorer=p.scorer, score=p.scores.get(step.pk)) for p in self.panels])
            for step in self.steps
        ]

    def thoughts(self) -> list[Thought]:
        """The first scorer with scores, its steps grouped by verdict at its threshold."""
        panel = next((p for p in self.panels if p.scores), None)
        if panel is None:
            return []
        scored = [(s, panel.scores[s.pk]) for s in self.steps if s.pk in panel.scores]
        has_thinking = any(step.part == StepPart.THINKING for step, _ in scored)
        return group_thoughts(
            [score.score for _, score in scored],
            threshold=panel.scorer.threshold,
            # Within a part: a thought never runs from the thinking into the response.
            parts=[step.part for step, _ in scored] if has_thinking else None,
            unknown=[score_is_unknown(score.details) for _, score in scored],
        )


def trace_scores(*, user: UserLike, trace_id: int) -> TraceScoresView:
    """The latest-version run of each of the project's scorers on this trace, with step scores."""
    trace = annotate_selectors.trace_get_for_user(user=user, trace_id=trace_id)
    scorers = list(scorers_for_project(project=trace.project))
    hidden = scores_hidden_for(user=user, trace=trace)
    runs = {
        run.scorer_id: run
        for run in ScoreRun.objects.filter(trace=trace, scorer__in=scorers)
        if run.scorer_version == next(s.version for s in scorers if s.pk == run.scorer_id)
    }
    panels = []
    for scorer in scorers:
        run = runs.get(scorer.pk)
        scores: dict[int, StepScore] = {}
        if run is not None and run.status == RunStatus.DONE and not hidden:
            scores = {s.step_id: s for s in run.step_scores.all()}
        panels.append(ScorerPanel(scorer=scorer, run=run, scores=scores))
    return TraceScoresView(
        trace=trace,
        hidden=hidden,
        panels=panels,
        workers=workers_alive(),
        steps=list(trace.steps.order_by("index")),
    )


@dataclass
class Coverage:
    """How much of a project one scorer (its current version) has scored."""

    scorer: Scorer
    traces: int
    done: int
    queued: int  # queued or running
    failed: int

    @property
    def not_yet(self) -> int:
        return max(0, self.traces - self.done - self.queued - self.failed)

    @property
    def busy(self) -> bool:
        return self.queued > 0


def scorer_coverage(*, project: Project) -> list[Coverage]:
    """Per scorer of the project: traces scored, queued, failed, not yet (one grouped query each;
    the caller checked the role)."""
    traces = Trace.objects.filter(project=project).count()
    rows = []
    for scorer in scorers_for_project(project=project):
        counts = dict(
            ScoreRun.objects.filter(
                scorer=scorer, scorer_version=scorer.version, trace__project=project
            )
            .values("status")
            .annotate(n=Count("pk"))
            .values_list("status", "n")
        )
        rows.append(
            Coverage(
                scorer=scorer,
                traces=traces,
                done=counts.get(RunStatus.DONE, 0),
                queued=counts.get(RunStatus.QUEUED, 0) + counts.get(RunStatus.RUNNING, 0),
                failed=counts.get(RunStatus.FAILED, 0),
            )
        )
    return rows
