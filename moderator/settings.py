"""One settings object for the worker, `score`, `demo` and the tests.

Values come from ``MODERATOR_*`` environment variables, then CLI flags override them. Secrets (SASL
password, Redis password inside the URL) are read from the environment only, never from flags, so
they do not show up in ``ps``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from moderator.runtime.options import RuntimeOptions
from moderator.runtime.windows import WindowConfig
from topics import InputLimits, TopicNames


class SettingsError(ValueError):
    """A ``MODERATOR_*`` value the worker cannot run with; the message names the variable."""


#: Accepted ``log_level`` values (Python's level names, lower case).
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

#: Repository root when running from a checkout; the shipped models live in ``models/`` there.
_REPO_ROOT = Path(__file__).resolve().parents[1]
_PACKAGE_DIR = Path(__file__).resolve().parent

#: One shared-backbone multitask model serves both roles (hate labels + safety categories for comments,
#: the same plus P(unsafe) for replies, one pass per record); both paths name it, it is loaded once.
DEFAULT_MODEL = _REPO_ROOT / "models" / "moderator-multitask-e5-small"
DEFAULT_CLASSIFIER = DEFAULT_MODEL
DEFAULT_JUDGE = DEFAULT_MODEL
DEFAULT_POLICY = _PACKAGE_DIR / "policies" / "default.json"


#: The defaults of the topic names and input limits are theirs (``topics``); Settings only exposes them.
_TOPICS, _LIMITS = TopicNames(), InputLimits()


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the worker reads at start; frozen so no module changes it behind another's back."""

    # Kafka
    broker: str = "kafka://127.0.0.1:9092"
    app_id: str = "moderator"
    # topic names: ``topic_<name>`` for each of TopicNames' fields, its defaults (``topics`` maps them back)
    topic_comments: str = _TOPICS.comments
    topic_replies: str = _TOPICS.replies
    topic_verdicts: str = _TOPICS.verdicts
    topic_flagged: str = _TOPICS.flagged
    topic_dead_letter: str = _TOPICS.dead_letter
    topic_reviews: str = _TOPICS.reviews
    topic_partitions: int = 4
    topic_replication: int = 1
    broker_session_timeout_s: float = 10.0
    broker_commit_interval_s: float = 1.0
    broker_security_protocol: str = "PLAINTEXT"
    broker_sasl_mechanism: str = "PLAIN"
    broker_sasl_username: str = ""
    broker_sasl_password: str = field(default="", repr=False)
    broker_ssl_cafile: str = ""
    broker_ssl_certfile: str = ""
    broker_ssl_keyfile: str = ""
    broker_wait_s: float = 120.0
    # Redis verdict cache ("" disables it)
    redis_url: str = field(default="redis://127.0.0.1:6379/0", repr=False)
    redis_ssl_ca_certs: str = ""
    # The id registry (the revision last verdicted per id) on its own Redis, so the cache's LRU eviction
    # cannot drop it; "" keeps it in the cache's Redis.
    id_redis_url: str = field(default="", repr=False)
    cache_ttl_s: int = 7 * 24 * 3600
    cache_timeout_ms: int = 100
    cache_retry_s: float = 2.0
    dedupe_ttl_s: int = 24 * 3600
    # ids the worker remembers in its own memory too (the newest; ~0.5 KB each): what links edits while
    # Redis is down
    id_memory_max: int = 200_000
    # Batching: ``batch_size`` is the model's rows per call (and the API's texts per batch); the stream
    # worker takes what one fetch returns, up to ``stream_batch_size`` records, as one pipeline batch
    # (one Redis round trip each way, one send wave), which the models split into their own batches.
    # ``batch_window_ms`` no longer delays the stream worker (kept so existing configurations load): a
    # fetch already waits at the broker for records (``moderator.stream.app.FETCH_MAX_WAIT_MS``).
    batch_size: int = 64
    batch_window_ms: float = 20.0
    stream_batch_size: int = 1000
    max_batch_tokens: int = 0
    # Long texts: windows per text (cost cap: max_windows × window_tokens tokens; beyond it the
    # policy's truncated_action); a comment's whole sentences packed into window_sentence_tokens
    max_windows: int = 128
    window_tokens: int = 64
    window_overlap: float = 0.25
    window_sentence_tokens: int = 24
    # Models and policy
    classifier_path: Path = DEFAULT_CLASSIFIER
    judge_path: Path = DEFAULT_JUDGE
    policy_path: Path = DEFAULT_POLICY
    device: str = "auto"
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    model_lanes: int = 0
    # Input limits
    max_record_bytes: int = _LIMITS.max_record_bytes
    max_text_chars: int = _LIMITS.max_text_chars
    strict_fields: bool = _LIMITS.strict_fields
    # Web (metrics, health): localhost only unless asked
    web_enabled: bool = True
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    stall_timeout_s: float = 60.0
    log_level: str = "info"
    # HTTP API (`moderator serve`, moderator/api/): keys come from the environment only
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    api_keys: str = field(default="", repr=False)
    api_keys_file: str = ""
    api_rate_limit: float = 50.0
    api_rate_burst: int = 100
    api_max_body_bytes: int = 1024 * 1024
    api_max_inputs: int = 64
    api_batch_window_ms: float = 5.0
    api_max_batch_chars: int = 16384
    api_stream_context_chars: int = 200
    # Dashboard (moderator dashboard): its own web server, index and accounts
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = 8090
    dashboard_db: Path = Path("moderator-dashboard.sqlite3")
    dashboard_metrics_urls: str = "http://127.0.0.1:6066/metrics"
    dashboard_cookie_secure: bool = False

    @property
    def topics(self) -> TopicNames:
        return TopicNames(**{f.name: getattr(self, f"topic_{f.name}") for f in fields(TopicNames)})

    @property
    def limits(self) -> InputLimits:
        return InputLimits(
            max_record_bytes=self.max_record_bytes,
            max_text_chars=self.max_text_chars,
            strict_fields=self.strict_fields,
        )

    @property
    def windows(self) -> WindowConfig:
        try:
            return WindowConfig(
                max_windows=self.max_windows,
                overlap=self.window_overlap,
                tokens=self.window_tokens,
                sentence_tokens=self.window_sentence_tokens,
            )
        except ValueError as exc:
            raise ValueError(
                "MODERATOR_MAX_WINDOWS / MODERATOR_WINDOW_TOKENS / MODERATOR_WINDOW_OVERLAP / "
                f"MODERATOR_WINDOW_SENTENCE_TOKENS: {exc}"
            ) from None

    @property
    def runtime(self) -> RuntimeOptions:
        if self.device not in ("auto", "cuda", "cpu"):
            raise SettingsError(f"MODERATOR_DEVICE must be auto, cuda or cpu, not {self.device!r}")
        return RuntimeOptions(
            device=self.device,  # type: ignore[arg-type]
            intra_op_threads=self.intra_op_threads,
            inter_op_threads=self.inter_op_threads,
            max_batch_tokens=self.max_batch_tokens,
            max_batch_rows=self.batch_size,
            lanes=self.model_lanes,
        )

    def check(self) -> Settings:
        """Refuse values that would only fail later, deep inside a batch or a thread pool."""
        at_least = {
            "batch_size": 1,
            "stream_batch_size": 1,
            "topic_partitions": 1,
            "topic_replication": 1,
            "batch_window_ms": 0,
            "max_batch_tokens": 0,
            "intra_op_threads": 0,
            "inter_op_threads": 0,
            "model_lanes": 0,
            "cache_ttl_s": 1,
            "dedupe_ttl_s": 1,
            "id_memory_max": 1,
            "cache_timeout_ms": 1,
            "max_record_bytes": 1,
            "max_text_chars": 1,
            "stall_timeout_s": 1,
            "api_rate_limit": 0,
            "api_rate_burst": 0,
            "api_max_body_bytes": 1,
            "api_max_inputs": 1,
            "api_batch_window_ms": 0,
            "api_max_batch_chars": 1,
            "api_stream_context_chars": 0,
        }
        for name, low in at_least.items():
            value = getattr(self, name)
            if value < low:
                raise SettingsError(f"{env_name(name)} must be at least {low}, not {value}")
        for name in ("web_port", "api_port"):
            if not 0 < getattr(self, name) < 65536:
                raise SettingsError(
                    f"{env_name(name)} must be a TCP port (1-65535), not {getattr(self, name)}"
                )
        if self.log_level.lower() not in LOG_LEVELS:
            raise SettingsError(
                f"MODERATOR_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {self.log_level!r}"
            )
        try:
            bootstrap_servers(self.broker)
        except ValueError as exc:
            raise SettingsError(
                f"MODERATOR_BROKER: {exc}; write it as kafka://host:port[,host:port]"
            ) from None
        self.runtime  # noqa: B018 - validates the device
        return self

    def with_overrides(self, **overrides: Any) -> Settings:
        """Apply CLI flags (``None`` means "not given") on top of the environment."""
        given = {k: _coerce(k, v) for k, v in overrides.items() if v is not None}
        return replace(self, **given)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = env_name(f.name)
            if name in env:
                values[f.name] = _coerce(f.name, env[name])
        return cls(**values)


_TYPES: dict[str, Any] = {}


def _field_type(name: str) -> Any:
    if not _TYPES:
        defaults = Settings()
        for f in fields(Settings):
            _TYPES[f.name] = type(getattr(defaults, f.name))
    return _TYPES[name]


def _coerce(name: str, value: Any) -> Any:
    kind = _field_type(name)
    if not isinstance(value, str):
        return (
            Path(value)
            if kind is not str and issubclass(kind, Path) and not isinstance(value, Path)
            else value
        )
    if kind is bool:
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{env_name(name)} must be true or false, not {value!r}")
    if issubclass(kind, Path):
        return Path(value).expanduser()
    try:
        return kind(value)
    except ValueError:
        raise SettingsError(f"{env_name(name)} must be a {kind.__name__}, not {value!r}") from None


def env_name(field_name: str) -> str:
    return "MODERATOR_" + field_name.upper()


def env_names() -> set[str]:
    """Every supported ``MODERATOR_*`` variable (the README's config table and the compose test use it)."""
    return {env_name(f.name) for f in fields(Settings)}


def bootstrap_servers(broker_url: str) -> str:
    """``kafka://h1:p1,h2:p2`` (or a bare ``h:p,...``) to aiokafka's ``h1:p1,h2:p2`` form."""
    if "://" not in broker_url:
        return broker_url
    parts = urlsplit(broker_url)
    if parts.scheme not in ("kafka", "tcp", "plaintext"):
        raise ValueError(f"unsupported broker URL scheme {parts.scheme!r} in {broker_url!r}")
    return ",".join(
        hp if ":" in hp else f"{hp}:9092" for hp in (p.strip() for p in parts.netloc.split(",")) if hp
    )
