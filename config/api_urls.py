"""The REST API: every app's routes in one `api` namespace under /api/ (schema: /api/schema/).

Each app lists its own routes (<app>/api_urls.py); this module, above every app, composes them,
so that no app includes another's.
"""

from __future__ import annotations

from annotate import api_urls as annotate_api
from review import api_urls as review_api
from scoring import api_urls as scoring_api
from snapshots import api_urls as snapshots_api

app_name = "api"
urlpatterns = [
    *annotate_api.urlpatterns,
    *scoring_api.urlpatterns,
    *review_api.urlpatterns,
    *snapshots_api.urlpatterns,
]
