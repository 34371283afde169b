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


def insert(db: Any, instance: Any, *, unless_exists: tuple[str, ...] = ()) -> bool:
    """INSERT `instance` (a new model instance: its defaults and `auto_now_add` applied by its
    fields, as `save()` would) in one statement RETURNING its primary key, which is set on it.

    With `unless_exists` (the fields of a unique constraint): ON CONFLICT (...) DO NOTHING, and
    False when a row with those values exists already (nothing written, the transaction intact,
    so no savepoint is needed). No signals are sent (`save()` sends pre_save and post_save)."""
    meta = instance._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    values = [f.get_db_prep_save(f.pre_save(instance, True), db) for f in fields]
    qn = db.ops.quote_name
    conflict = ""
    if unless_exists:
        conflict = (
            f"ON CONFLICT ({', '.join(column(db, type(instance), name) for name in unless_exists)}) "
            "DO NOTHING "
        )
    sql = (
        f"INSERT INTO {table(db, type(instance))} ({', '.join(qn(f.column) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) {conflict}"
        f"RETURNING {qn(meta.pk.column)}"
    )
    with db.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    if row is None:
        return False
    instance.pk = row[0]
    instance._state.adding = False
    instance._state.db = db.alias
    return True
