"""Audit a PRM against a project's gold labels: ProcessBench and PRMBench metrics, AUROC, ECE..."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate.models import Project
from review import audit
from scoring.models import Scorer


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}"


class Command(BaseCommand):
    help = (
        "Report how a scorer's step scores agree with a project's gold labels (ProcessBench F1, "
        "PRMBench score, AUROC, ECE, best threshold, Best-of-N, breakdowns). Rates are fractions."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="Project slug.")
        parser.add_argument("--scorer", required=True, help="Scorer name.")
        parser.add_argument(
            "--threshold", type=float, default=None, help="Default: the scorer's threshold."
        )
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"No project {options['project']!r}.")
        scorer = Scorer.objects.filter(name=options["scorer"]).first()
        if scorer is None:
            raise CommandError(f"No scorer {options['scorer']!r}.")
        threshold = options["threshold"]
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise CommandError("--threshold must lie in [0, 1].")
        report = audit.audit_report(project=project, scorer=scorer, threshold=threshold)
        if options["json"]:
            self.stdout.write(json.dumps(report, separators=(",", ":")))
            return
        pb, prm = report["processbench"], report["prmbench"]
        lines = [
            f"{scorer.name} v{scorer.version} on {project.slug} at threshold {report['threshold']}: "
            f"{report['traces']} traces, {report['steps']} steps, {report['gold_steps']} gold",
            report["threshold_rule"],
        ]
        if report["no_verdict"]["steps"]:
            nv = report["no_verdict"]
            lines.append(
                f"Left out: {nv['steps']} steps with no verdict ({nv['gold_steps']} gold-labelled; "
                f"the scorer checked nothing there), {nv['traces_without_any']} traces with none"
            )
        lines += [
            f"ProcessBench  acc_error {_fmt(pb['acc_error'])} ({pb['n_error']} traces)  "
            f"acc_correct {_fmt(pb['acc_correct'])} ({pb['n_correct']})  F1 {_fmt(pb['f1'])}",
        ]
        for name, sub in pb["by_subset"].items():
            lines.append(
                f"  {name:<16} acc_error {_fmt(sub['acc_error'])}  "
                f"acc_correct {_fmt(sub['acc_correct'])}  F1 {_fmt(sub['f1'])}"
            )
        best = report["best_threshold"]
        lines += [
            f"PRMBench      score {_fmt(prm['score'])}  F1 correct {_fmt(prm['f1_correct'])}  "
            f"F1 error {_fmt(prm['f1_error'])}",
            f"AUROC {_fmt(report['auroc'])}   ECE positive class {_fmt(report['ece'])}, "
            f"top label {_fmt(report['ece_top_label'])}   "
            f"best threshold {_fmt(best['threshold'])} (F1 {_fmt(best['f1'])})",
            "Best-of-N     "
            + "  ".join(f"{how} {_fmt(b['prm'])}" for how, b in report["best_of_n"].items())
            + f"  majority {_fmt(report['best_of_n']['min']['majority'])}"
            + f"  ({report['best_of_n']['min']['problems']} problems)",
        ]
        self.stdout.write("\n".join(lines))
