"""How Faust decodes what the worker reads, without its serializer registry.

`RawBytes`, the worker's topics: keys and values stay the bytes Kafka delivered. The worker decodes
messages itself (workers.kafka.codec), so Faust's own decoding has nothing to do; yet with
`key_type=bytes, value_type=bytes` it still passes every key and value through its serializer
registry and the raw codec, about 1.5 us of the main thread per message (measured with timeit: 2.5 us
per message through Faust's compiled decoder, 1.0 us through this one, both building the event).

`ChangelogRows`, the tables' changelogs, which table recovery reads record by record: JSON keys and
values as the worker writes them (workers.kafka.write_out), decoded with orjson, and an account's row left
as bytes until the account is next handled.
"""

from __future__ import annotations

from typing import Any

import faust
import orjson
from faust.exceptions import KeyDecodeError, ValueDecodeError


class RawBytes(faust.Schema):
    """What Faust's schema gives for bytes keys and values with the raw serializer (the bytes as they
    are, None for none), without the registry; encoding is Faust's own."""

    def __init__(self) -> None:
        super().__init__(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    def compile(self, app: Any, **_: Any) -> Any:
        # A raw key or value cannot fail to decode, so the error callbacks have nothing to catch.
        create_event = app.create_event

        async def decode(message: Any, *, propagate: bool = False) -> Any:
            return create_event(message.key, message.value, message.headers, message)

        return decode


class ChangelogRows(faust.Schema):
    """A table's changelog records: the key (the account, as JSON text) decoded with orjson, and the value
    decoded with orjson or, with `rows_as_bytes`, kept as the bytes written. Recovery reads every record
    of a changelog, and most of them are rows a later record of the same account replaces: Faust's JSON
    path through the registry was a fifth of a restarted worker's recovery (py-spy). A key or value that
    is not JSON goes to Faust's decode-error callbacks, as through Faust's own `Schema.compile`."""

    def __init__(self, *, rows_as_bytes: bool = False) -> None:
        super().__init__(key_serializer="json", value_serializer="raw" if rows_as_bytes else "json")
        self.rows_as_bytes = rows_as_bytes

    def compile(self, app: Any, *, on_key_decode_error: Any = None, on_value_decode_error: Any = None,
                default_propagate: bool = False, **_: Any) -> Any:
        create_event = app.create_event
        rows_as_bytes = self.rows_as_bytes

        async def decode(message: Any, *, propagate: bool = default_propagate) -> Any:
            key, value = message.key, message.value
            try:
                key = None if key is None else orjson.loads(key)
            except orjson.JSONDecodeError as exc:
                return await _undecodable(KeyDecodeError(str(exc)), message, on_key_decode_error, propagate)
            try:
                value = value if rows_as_bytes or value is None else orjson.loads(value)
            except orjson.JSONDecodeError as exc:
                return await _undecodable(ValueDecodeError(str(exc)), message, on_value_decode_error, propagate)
            return create_event(key, value, message.headers, message)

        return decode


async def _undecodable(error: Exception, message: Any, callback: Any, propagate: bool) -> None:
    if propagate:
        raise error
    if callback is not None:
        await callback(error, message)
