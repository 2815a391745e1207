"""The moderator's wire contract: topic names, record shapes, orjson serde and validation.

Producers, dashboards and the worker import this package; it needs only orjson, never faust or
onnxruntime, so a producer can validate what it sends with the same code the worker uses.
"""

from topics.labels import HATE_LABEL_KEYS, LABEL_KEYS, UNSMILE_COLUMNS
from topics.names import TopicNames
from topics.records import (
    CommentIn,
    DeadLetter,
    ReplyIn,
    SourcePosition,
    Verdict,
    Why,
)
from topics.serde import dumps, loads
from topics.text import content_hash, content_revision, normalize_text
from topics.validation import InputLimits, InvalidRecord, Reason, decode_comment, decode_reply

__all__ = [
    "LABEL_KEYS",
    "HATE_LABEL_KEYS",
    "UNSMILE_COLUMNS",
    "TopicNames",
    "CommentIn",
    "ReplyIn",
    "Verdict",
    "Why",
    "DeadLetter",
    "SourcePosition",
    "dumps",
    "loads",
    "normalize_text",
    "content_hash",
    "content_revision",
    "InputLimits",
    "InvalidRecord",
    "Reason",
    "decode_comment",
    "decode_reply",
]
