"""Browser views: thin, each parses input, calls one service or selector and renders."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from . import selectors


@login_required
def home(request: HttpRequest) -> HttpResponse:
    projects = selectors.project_list_for_user(user=request.user)
    return render(request, "annotate/home.html", {"projects": projects})
