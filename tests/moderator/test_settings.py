from pathlib import Path

import pytest

from moderator.settings import Settings, env_names


def test_env_then_flags() -> None:
    s = Settings.from_env(
        {"MODERATOR_BATCH_SIZE": "16", "MODERATOR_STRICT_FIELDS": "no", "MODERATOR_JUDGE_PATH": "/m/j"}
    )
    assert s.batch_size == 16 and s.strict_fields is False and s.judge_path == Path("/m/j")
    s2 = s.with_overrides(batch_size=8, broker=None)
    assert s2.batch_size == 8 and s2.broker == s.broker
    assert s.runtime.max_batch_rows == 16 and s.limits.strict_fields is False


def test_bad_values_name_the_variable() -> None:
    with pytest.raises(ValueError, match="MODERATOR_BATCH_SIZE"):
        Settings.from_env({"MODERATOR_BATCH_SIZE": "many"})
    with pytest.raises(ValueError, match="MODERATOR_WEB_ENABLED"):
        Settings.from_env({"MODERATOR_WEB_ENABLED": "maybe"})
    with pytest.raises(ValueError, match="MODERATOR_DEVICE"):
        _ = Settings(device="tpu").runtime


def test_secrets_are_not_in_repr_and_defaults_bind_localhost() -> None:
    s = Settings.from_env(
        {"MODERATOR_BROKER_SASL_PASSWORD": "hunter2", "MODERATOR_REDIS_URL": "redis://:pw@h/0"}
    )
    assert "hunter2" not in repr(s) and "pw@" not in repr(s)
    assert Settings().web_host == "127.0.0.1"
    assert "MODERATOR_BROKER" in env_names() and "MODERATOR_REDIS_URL" in env_names()


def test_window_settings_reach_the_window_config() -> None:
    s = Settings.from_env({"MODERATOR_WINDOW_SENTENCE_TOKENS": "0", "MODERATOR_MAX_WINDOWS": "9"})
    assert (s.windows.sentence_tokens, s.windows.max_windows) == (0, 9)
    assert Settings().windows.sentence_tokens == 24
    with pytest.raises(ValueError, match="MODERATOR_WINDOW_SENTENCE_TOKENS"):
        _ = Settings.from_env({"MODERATOR_WINDOW_SENTENCE_TOKENS": "3"}).windows
