"""orjson on the wire: compact UTF-8 JSON, non-str keys and numpy scalars refused loudly."""

from typing import Any

import orjson


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    return orjson.loads(data)
