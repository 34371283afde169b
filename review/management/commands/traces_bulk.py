"""The data browser's bulk actions from the command line: every trace of a filter (the page's URL
query), as a named person (their role is checked, and the action is logged under their name)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.http import Http404
from rest_framework.exceptions import ValidationError as DRFValidationError

from annotate import selectors as annotate_selectors
from review import browser, bulk
from review.models import BulkActionKind


class Command(BaseCommand):
    help = (
        "Apply a data browser bulk action to every trace of a filter, e.g. "
        "--filter 'prm=wrong&status=unlabelled' --action assign --annotator ann1 --user lead."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="Project slug.")
        parser.add_argument(
            "--filter", default="", help="The data page's URL query (empty: every trace)."
        )
        parser.add_argument("--action", required=True, choices=BulkActionKind.values)
        parser.add_argument("--user", required=True, help="Who acts (their role is checked).")
        parser.add_argument("--annotator", help="assign: a member's username.")
        parser.add_argument("--scorer", help="score: a scorer of the project.")
        parser.add_argument("--confirm", help="delete: the number of traces the filter selects.")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"--user: no account {options['user']!r}.")
        try:
            project = annotate_selectors.project_get_for_user(user=user, slug=options["project"])
            ids = browser.bulk_targets(
                project=project, query=options["filter"], trace_ids=[], whole_filter=True
            )
            done = bulk.traces_bulk(
                user=user,
                project=project,
                action=options["action"],
                trace_ids=ids,
                query=options["filter"],
                options={
                    k: options[k] for k in ("annotator", "scorer", "confirm") if options.get(k)
                },
            )
        except (Http404, PermissionDenied) as exc:
            raise CommandError(f"--project {options['project']}: {exc}") from exc
        except DRFValidationError as exc:
            raise CommandError(f"--filter: {exc.detail}") from exc
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(
            f"{done.get_action_display()}: {done.changed} of {done.selected} traces changed "
            f"(logged as bulk action {done.pk})."
        )
