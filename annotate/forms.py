"""Forms of the labelling pages: they parse and validate POST input, nothing more."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat

from .imports import FORMATS
from .models import FinishReason, LabelScheme, Project

_VALUE_CHOICES = [("", "clear"), ("1", "+1"), ("0", "0"), ("-1", "-1")]
NOTE_MAX_LENGTH = 20_000


class StepLabelForm(forms.Form):
    """Any subset of value / flagged / note; a field absent from the POST keeps its saved value."""

    value = forms.TypedChoiceField(
        choices=_VALUE_CHOICES, coerce=int, empty_value=None, required=False
    )
    flagged = forms.TypedChoiceField(
        choices=[("0", "no"), ("1", "yes")], coerce=lambda v: v == "1", required=False
    )
    note = forms.CharField(required=False, strip=False, max_length=NOTE_MAX_LENGTH)

    def changes(self) -> dict[str, Any]:
        """Keyword arguments for services.label_set: only the fields the request sent."""
        return {name: self.cleaned_data[name] for name in self.fields if name in self.data}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not any(name in self.data for name in self.fields):
            raise forms.ValidationError("Nothing to save: send value, flagged or note.")
        return cleaned


class SubmitForm(forms.Form):
    finish_reason = forms.ChoiceField(
        choices=[("", "Infer from my labels"), *FinishReason.choices], required=False
    )


class HeartbeatForm(forms.Form):
    seconds = forms.FloatField(min_value=0, max_value=3600)


class ImportForm(forms.Form):
    """Upload a file of traces into a project the user administers (site admins: any, or a new one)."""

    file = forms.FileField(
        help_text="JSONL, one record per line; or a zip of one records file and the images it "
        "names (an image bundle)."
    )
    format = forms.ChoiceField(choices=[(name, name) for name in FORMATS])
    project = forms.ChoiceField(required=False)
    new_project = forms.SlugField(
        required=False,
        max_length=100,
        label="or a new project (slug)",
        help_text="Site admins only: creates the project.",
    )
    subset = forms.CharField(
        required=False, max_length=100, help_text="Optional, e.g. gsm8k or math."
    )

    def __init__(
        self, *args: Any, projects: list[Project], can_create: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        choices = [(project.slug, project.name or project.slug) for project in projects]
        project_field = self.fields["project"]
        assert isinstance(project_field, forms.ChoiceField)
        project_field.choices = [("", "— choose —"), *choices]
        self.can_create = can_create
        if not can_create:
            del self.fields["new_project"]

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size > settings.IMPORT_MAX_BYTES:
            raise forms.ValidationError(
                f"{upload.name} is {filesizeformat(upload.size)}; the largest import is "
                f"{filesizeformat(settings.IMPORT_MAX_BYTES)}. Split the file, or use "
                "`python manage.py import_traces`."
            )
        return upload

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        slug = cleaned.get("new_project") or cleaned.get("project")
        if not slug:
            raise forms.ValidationError(
                "Choose a project" + (" or name a new one." if self.can_create else ".")
            )
        cleaned["project_slug"] = slug
        return cleaned


class HostListField(forms.CharField):
    """Host names typed as one line, separated by commas or spaces; a list in and out."""

    def prepare_value(self, value: Any) -> Any:
        return ", ".join(value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        text = super().to_python(value)
        return [h for h in re.split(r"[\s,]+", text) if h]


class ProjectSettingsForm(forms.Form):
    """A project's own settings (the queue's are review's, the scorers scoring's)."""

    name = forms.CharField(max_length=200)
    guidelines = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text="Markdown with LaTeX, shown to annotators above the queue and on each trace.",
    )
    label_scheme = forms.ChoiceField(
        choices=LabelScheme.choices,
        help_text="Fixed once the project has labels (they would be read under another scheme).",
    )
    overlap = forms.IntegerField(
        min_value=1, max_value=20, help_text="How many annotators label each trace independently."
    )
    blind = forms.BooleanField(
        required=False, help_text="Hide PRM scores until the annotator submits."
    )
    hotkeys = forms.JSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text='The labelling page\'s keys and label names, e.g. {"keys": {"plus": "y", '
        '"minus": "n"}, "names": {"1": "right"}}; empty: the defaults (README, "Labelling").',
    )
    image_hosts = HostListField(
        required=False,
        label="Image hosts",
        help_text="https hosts this project's problem images may load from, e.g. "
        "images.example.org (comma-separated; empty: none, images come inside the data). "
        "Loading an image tells its host who is labelling.",
    )


class ProjectCreateForm(ProjectSettingsForm):
    image_hosts = None  # set on the settings page, once the project exists
    slug = forms.SlugField(
        max_length=100, help_text="The project's short name in URLs and commands, e.g. gsm8k-audit."
    )
    field_order = ["slug", "name"]
