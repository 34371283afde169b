# Secrets out of stored scorers and run errors (issue "Hardening", item 1): a remote scorer's
# `api_key` param is dropped (the worker now reads it from the variable named by `api_key_env`;
# until that is set, the scorer's runs fail saying so), URLs lose their credentials and queries,
# and stored run errors are redacted alike.

from django.db import migrations


def redact(apps, schema_editor):
    from urllib.parse import urlsplit

    from scoring.prm.redact import redact_text, redact_url

    Scorer = apps.get_model("scoring", "Scorer")
    ScoreRun = apps.get_model("scoring", "ScoreRun")
    for scorer in Scorer.objects.all():
        params = dict(scorer.params or {})
        changed = params.pop("api_key", None) is not None
        for key, value in list(params.items()):
            if isinstance(value, str) and "://" in value:
                parts = urlsplit(value)
                if parts.username or parts.password or parts.query or parts.fragment:
                    params[key] = redact_url(value)
                    changed = True
        if changed:
            scorer.params = params
            scorer.version += 1  # what it computes with may change: score again when fixed
            scorer.save(update_fields=["params", "version"])
    for run in ScoreRun.objects.exclude(error="").only("pk", "error").iterator():
        clean = redact_text(run.error)
        if clean != run.error:
            ScoreRun.objects.filter(pk=run.pk).update(error=clean)


class Migration(migrations.Migration):
    dependencies = [("scoring", "0001_initial")]

    operations = [migrations.RunPython(redact, migrations.RunPython.noop)]
