"""The export form in a real browser: changing the format shows that format's fields and hides the
others in the page, and nothing typed before or just after the change is lost (an earlier form
redrew itself from the server on each change, and wiped what was typed while the redraw was on
its way: a training run then got a snapshot without its test split)."""

from __future__ import annotations

import pytest

from annotate import imports, services
from snapshots.models import ExportSnapshot
from tests.browser.test_labelling import PASSWORD, log_in
from tests.conftest import REPO_ROOT
from tests.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_format_change_keeps_what_was_typed_and_shows_its_own_fields(page) -> None:  # type: ignore[no-untyped-def]
    project, _ = imports.project_for_import(slug="exf")
    with open(REPO_ROOT / "data" / "processbench_sample.jsonl", "rb") as stream:
        imports.traces_import(
            project=project, stream=stream, filename="pb.jsonl", format="processbench"
        )
    services.membership_set(
        project=project, user=make_user("rita", password=PASSWORD), role="reviewer"
    )
    log_in(page, "rita", f"/p/{project.slug}/exports/")

    def shown(name: str) -> bool:
        return page.locator(f"#id_{name}").is_visible()

    assert shown("file_format") and not shown("top_k")  # TRL, the default
    page.fill("#id_name", "gold")
    page.select_option("#id_format", "sft")
    assert shown("select") and shown("scorer") and shown("top_k") and shown("file_format")
    page.select_option("#id_format", "prm800k")
    # typed straight after the change, as a quick person does
    page.select_option("#id_neutral", "drop")
    page.fill("#id_test_fraction", "0.25")
    page.fill("#id_seed", "3")
    assert not shown("file_format") and not shown("top_k") and not shown("select")
    page.wait_for_timeout(300)  # an in-flight redraw, if any, would land here
    assert page.input_value("#id_name") == "gold"
    assert page.input_value("#id_test_fraction") == "0.25"
    page.click("button:has-text('Export')")
    page.wait_for_url(f"**/p/{project.slug}/exports/")
    snapshot = ExportSnapshot.objects.get(name="gold")
    assert (snapshot.format, snapshot.neutral, snapshot.test_fraction, snapshot.seed) == (
        "prm800k",
        "drop",
        0.25,
        3,
    )
