"""annotate's own reactions to Django's events (connected in AnnotateConfig.ready)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models.signals import pre_save
from django.dispatch import receiver

from . import tokens


@receiver(pre_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="steplens-tokens-on-password")
def _revoke_tokens_on_password_change(sender: Any, instance: Any, **_: Any) -> None:
    """A new password ends every API token of the user (whoever knew the old one may hold one)."""
    if instance.pk is None:
        return
    old = sender.objects.filter(pk=instance.pk).values_list("password", flat=True).first()
    if old is not None and old != instance.password:
        tokens.api_tokens_revoke_all(user_id=instance.pk)
