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


_STATEMENTS: dict[tuple[str, Any], str] = {}


def statement(db: Any, build: Any) -> str:
    """The SQL `build(db)` writes, built once per database (by alias) and kept."""
    key = (db.alias, build)
    sql = _STATEMENTS.get(key)
    if sql is None:
        sql = _STATEMENTS.setdefault(key, build(db))
    return sql


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


_PREPARED: dict[tuple[str, Any], tuple[list[str], list[tuple[int, Any, list[Any]]]]] = {}


def _prepared(db: Any, model: Any) -> tuple[list[str], list[tuple[int, Any, list[Any]]]]:
    """`model`'s concrete fields' attribute names and, for the fields whose database values the
    ORM converts (JSON; dates, decimals... on SQLite), (position, column, converters)."""
    key = (db.alias, model)
    prepared = _PREPARED.get(key)
    if prepared is None:
        meta = model._meta
        converters = []
        for position, field in enumerate(meta.concrete_fields):
            col = field.get_col(meta.db_table)
            found = db.ops.get_db_converters(col) + field.get_db_converters(db)
            if found:
                converters.append((position, col, found))
        names = [f.attname for f in meta.concrete_fields]
        prepared = _PREPARED.setdefault(key, (names, converters))
    return prepared


def columns(db: Any, model: Any, alias: str = "") -> str:
    """Every column of `model`, in its fields' order (what `load` takes), prefixed by `alias.`."""
    prefix = f"{alias}." if alias else ""
    return ", ".join(f"{prefix}{db.ops.quote_name(f.column)}" for f in model._meta.concrete_fields)


def width(model: Any) -> int:
    """How many values of a row `columns(model)` selects."""
    return len(model._meta.concrete_fields)


def load(db: Any, model: Any, values: Any) -> Any:
    """A `model` instance from the values `columns(db, model)` selected, converted by its fields
    as the ORM converts them (JSON, dates on SQLite)."""
    names, converters = _prepared(db, model)
    values = list(values)
    for position, col, found in converters:
        for convert in found:
            values[position] = convert(values[position], col, db)
    return model.from_db(db.alias, names, values)


def select(db: Any, model: Any, where: str, params: Any, *, for_update: bool = False) -> list[Any]:
    """The `model` instances of `SELECT <every column> FROM <its table> WHERE <where>` (row-locked
    with `for_update` where the database can), without the ORM's query compilation: a statement
    of the label save's path spent longer there than in the database (issue 16)."""
    lock = " FOR UPDATE" if for_update and db.features.has_select_for_update else ""
    with db.cursor() as cursor:
        cursor.execute(
            f"SELECT {columns(db, model)} FROM {table(db, model)} WHERE {where}{lock}", params
        )
        rows = cursor.fetchall()
    return [load(db, model, row) for row in rows]
