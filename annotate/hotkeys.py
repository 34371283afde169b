"""The labelling page's keys and label names, per project (Project.hotkeys): defaults, checks."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

from .models import LabelScheme

# action -> (default key, what the legend says). Arrow keys, Enter, Esc, Ctrl+Z / Ctrl+Shift+Z
# are fixed aliases on top of these.
ACTIONS: dict[str, tuple[str, str]] = {
    "next": ("j", "next step"),
    "prev": ("k", "previous step"),
    "plus": ("1", "correct (+1), then next"),
    "zero": ("2", "neutral (0), then next"),
    "minus": ("3", "wrong (−1), then next"),
    "first_error": ("e", "first wrong step here"),
    "all_correct": ("a", "all steps correct"),
    "flag": ("f", "flag step"),
    "note": ("n", "note (Esc leaves)"),
    "reference": ("r", "reference answer"),
    "undo": ("u", "undo (also Ctrl+Z)"),
    "redo": ("U", "redo (also Ctrl+Shift+Z)"),
    "next_unlabelled": ("g", "next unlabelled step"),
    "next_disagreement": ("d", "next step where the PRM disagrees with you"),
    "help": ("?", "all shortcuts"),
}
# The binary scheme has no neutral: its "wrong" sits where ternary's neutral is.
_BINARY_DEFAULTS = {"minus": "2"}
RESERVED = {"Enter", "Escape", "Tab", " "}
DEFAULT_NAMES = {"1": "correct", "0": "neutral", "-1": "wrong"}
NAME_MAX_LENGTH = 30


def _scheme_actions(scheme: str) -> list[str]:
    actions = list(ACTIONS)
    if scheme != LabelScheme.TERNARY:
        actions.remove("zero")
    if scheme == LabelScheme.FIRST_ERROR:
        actions.remove("plus")
        actions.remove("minus")
    return actions


def hotkeys_clean(*, hotkeys: Any, scheme: str = LabelScheme.TERNARY) -> dict[str, Any]:
    """Check a project's `hotkeys` value; raise ValidationError naming the field at fault."""
    if hotkeys in (None, ""):
        return {}
    if not isinstance(hotkeys, dict) or set(hotkeys) - {"keys", "names"}:
        raise ValidationError({"hotkeys": 'Expected {"keys": {action: key}, "names": {...}}.'})
    keys = hotkeys.get("keys") or {}
    names = hotkeys.get("names") or {}
    if not isinstance(keys, dict) or not isinstance(names, dict):
        raise ValidationError({"hotkeys": "`keys` and `names` must be objects."})
    for action, key in keys.items():
        if action not in ACTIONS:
            raise ValidationError(
                {"hotkeys": f"keys.{action}: no such action (known: {', '.join(ACTIONS)})."}
            )
        if not isinstance(key, str) or len(key) != 1 or key in RESERVED:
            raise ValidationError(
                {"hotkeys": f"keys.{action}: {key!r} is not one printable character."}
            )
    merged = _keys(keys=keys, scheme=scheme)
    seen: dict[str, str] = {}
    for action, key in merged.items():
        if key in seen:
            raise ValidationError(
                {"hotkeys": f"keys.{action}: {key!r} is already the key of {seen[key]}."}
            )
        seen[key] = action
    for value, name in names.items():
        if value not in DEFAULT_NAMES:
            raise ValidationError({"hotkeys": f"names.{value}: labels are 1, 0 and -1."})
        if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX_LENGTH:
            raise ValidationError(
                {"hotkeys": f"names.{value}: 1 to {NAME_MAX_LENGTH} characters of text."}
            )
    return {"keys": dict(keys), "names": {k: v.strip() for k, v in names.items()}}


def _keys(*, keys: dict[str, str], scheme: str) -> dict[str, str]:
    defaults = {action: key for action, (key, _) in ACTIONS.items()}
    if scheme == LabelScheme.BINARY:
        defaults.update(_BINARY_DEFAULTS)
    return {action: keys.get(action, defaults[action]) for action in _scheme_actions(scheme)}


def hotkeys_for(*, hotkeys: dict[str, Any] | None, scheme: str) -> dict[str, Any]:
    """The keys and names the page uses: the project's choices over the defaults.

    >>> hotkeys_for(hotkeys={"keys": {"plus": "y"}}, scheme="binary")["keys"]["plus"]
    'y'
    >>> hotkeys_for(hotkeys={}, scheme="binary")["keys"]["minus"]
    '2'
    """
    hotkeys = hotkeys or {}
    names = {**DEFAULT_NAMES, **(hotkeys.get("names") or {})}
    keys = _keys(keys=hotkeys.get("keys") or {}, scheme=scheme)
    value_of = {"plus": "1", "zero": "0", "minus": "-1"}
    signed = {"1": "+1", "0": "0", "-1": "−1"}
    legend = [
        (
            action,
            keys[action],
            f"{names[value_of[action]]} ({signed[value_of[action]]}), then next"
            if action in value_of
            else ACTIONS[action][1],
        )
        for action in keys
    ]
    label_names = {action: names[value] for action, value in value_of.items()}
    return {"keys": keys, "names": names, "label_names": label_names, "legend": legend}
