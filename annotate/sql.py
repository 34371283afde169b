"""Quoted table and column names for the few statements written out by hand (the label save's
hot path, issue 16): the names come from the models, so a renamed field or table follows."""

from __future__ import annotations

from typing import Any


def table(db: Any, model: Any) -> str:
    """`model`'s table, quoted for the connection `db`."""
    return str(db.ops.quote_name(model._meta.db_table))


def column(db: Any, model: Any, name: str) -> str:
    """The column of `model`'s field `name` (a foreign key's `_id` column), quoted for `db`."""
    return str(db.ops.quote_name(model._meta.get_field(name).column))
