# Existing API tokens (DRF's authtoken, stored in plain text) become hashed ApiTokens: clients
# that hold one keep working until it expires (STEPLENS_API_TOKEN_DAYS from now); the plain-text
# rows are deleted.

import hashlib
from datetime import timedelta

from django.conf import settings
from django.db import migrations
from django.utils import timezone


def hash_tokens(apps, schema_editor):
    Token = apps.get_model("authtoken", "Token")
    ApiToken = apps.get_model("annotate", "ApiToken")
    expires = timezone.now() + timedelta(days=getattr(settings, "STEPLENS_API_TOKEN_DAYS", 90))
    for token in Token.objects.all():
        ApiToken.objects.create(
            user_id=token.user_id,
            name="api (from before tokens were hashed)",
            key_prefix=token.key[:8],
            digest=hashlib.sha256(token.key.encode()).hexdigest(),
            expires_at=expires,
        )
    Token.objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("annotate", "0007_api_tokens"),
        ("authtoken", "0004_alter_tokenproxy_options"),
    ]

    operations = [migrations.RunPython(hash_tokens, migrations.RunPython.noop)]
