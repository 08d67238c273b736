"""Single-row statements for a hot path, written out instead of compiled by the ORM on every call.

Storing a chat question (apps.chat.services.message_submit) runs before its first token can be shown.
Through the ORM its transaction took 1.45 ms of CPU on SQLite; written out, with each model's INSERT
built once, 0.46 ms: query compilation was most of it, and that CPU holds the GIL the event loop needs
to send the upstream request and relay the answer (README, "Performance").

The model stays the single source of tables, columns and value conversion: `Field.pre_save` (defaults,
`auto_now`), `Field.get_db_prep_save` (UUIDs, datetimes per backend) and `Manager.raw` (converters on
the way back), so these follow migrations like any ORM call. SQLite (3.35+) and PostgreSQL only: both
have `RETURNING`.
"""

import functools
from collections.abc import Sequence
from typing import Any, TypeVar

from django.db import connection
from django.db.models import Field, Model

ModelT = TypeVar("ModelT", bound=Model)


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def column(model: type[Model], field_name: str) -> str:
    """The quoted column of `model.field_name`, for a raw query's text."""
    return _quote(model._meta.get_field(field_name).column)


def table(model: type[Model]) -> str:
    """The quoted table of `model`, for a raw query's text."""
    return _quote(model._meta.db_table)


def value(model: type[Model], field_name: str, python_value: object) -> Any:
    """`python_value` as the database stores `model.field_name` (a hex string for a UUID on SQLite, a
    foreign key as its target's value), for a raw query's params."""
    return model._meta.get_field(field_name).get_db_prep_value(python_value, connection)


def pk_value(model: type[Model], pk: object) -> Any:
    return model._meta.pk.get_db_prep_value(pk, connection)


def row_for_update(model: type[ModelT], pk: object) -> ModelT | None:
    """The row `pk` of `model`, locked until the transaction ends where the backend locks rows."""
    meta = model._meta
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    sql = f"SELECT * FROM {_quote(meta.db_table)} WHERE {_quote(meta.pk.column)} = %s{lock}"
    return next(iter(model.objects.raw(sql, [pk_value(model, pk)])), None)


@functools.cache
def _insert_statement(model: type[Model], vendor: str) -> tuple[tuple[Field, ...], str]:
    """(the fields an INSERT writes, its SQL), made once per model and database backend."""
    meta = model._meta
    fields = tuple(field for field in meta.concrete_fields if not field.primary_key)
    columns = ", ".join(_quote(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {_quote(meta.db_table)} ({columns}) VALUES ({placeholders}) RETURNING {_quote(meta.pk.column)}"
    return fields, sql


def insert(instance: Model) -> None:
    """INSERT `instance` as `save()` would (field defaults, `auto_now_add`, value preparation); sets its
    auto-increment primary key. Sends no model signals."""
    fields, sql = _insert_statement(type(instance), connection.vendor)
    values = [field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        instance.pk = cursor.fetchone()[0]
    instance._state.adding = False
    instance._state.db = connection.alias


def update(instance: Model, field_names: Sequence[str]) -> None:
    """UPDATE these fields of `instance`'s row as `save(update_fields=...)` would (`auto_now` refreshed).
    Sends no model signals."""
    meta = instance._meta
    fields = [meta.get_field(name) for name in field_names]
    values = [field.get_db_prep_save(field.pre_save(instance, False), connection) for field in fields]
    assignments = ", ".join(f"{_quote(field.column)} = %s" for field in fields)
    sql = f"UPDATE {_quote(meta.db_table)} SET {assignments} WHERE {_quote(meta.pk.column)} = %s"
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values, pk_value(type(instance), instance.pk)])
