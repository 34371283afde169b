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


_SELECTS: dict[tuple[str, Any], tuple[str, list[str], list[tuple[int, Any, list[Any]]]]] = {}


def select(db: Any, model: Any, where: str, params: Any, *, for_update: bool = False) -> list[Any]:
    """The `model` instances of `SELECT <every column> FROM <its table> WHERE <where>` (row-locked
    with `for_update` where the database can), their values converted by the fields as the ORM
    converts them (JSON, dates on SQLite), without the ORM's query compilation: a statement of
    the label save's path spent longer there than in the database (issue 16)."""
    key = (db.alias, model)
    prepared = _SELECTS.get(key)
    if prepared is None:
        meta = model._meta
        fields = meta.concrete_fields
        converters = []
        for position, field in enumerate(fields):
            col = field.get_col(meta.db_table)
            found = db.ops.get_db_converters(col) + field.get_db_converters(db)
            if found:
                converters.append((position, col, found))
        head = f"SELECT {', '.join(db.ops.quote_name(f.column) for f in fields)} FROM {table(db, model)}"
        prepared = _SELECTS.setdefault(key, (head, [f.attname for f in fields], converters))
    head, names, converters = prepared
    lock = " FOR UPDATE" if for_update and db.features.has_select_for_update else ""
    with db.cursor() as cursor:
        cursor.execute(f"{head} WHERE {where}{lock}", params)
        rows = cursor.fetchall()
    instances = []
    for row in rows:
        values = list(row)
        for position, col, found in converters:
            for convert in found:
                values[position] = convert(values[position], col, db)
        instances.append(model.from_db(db.alias, names, values))
    return instances
