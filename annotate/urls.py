"""URLs of the labelling pages (browser, htmx)."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "annotate"
urlpatterns = [
    path("", views.home, name="home"),
]
