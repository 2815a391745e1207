"""The CLI's offline commands on tiny real models: score (stdout/stderr contract) and eval."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest


def run(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "moderator", *args], capture_output=True, timeout=180)


def tiny_models(classifier: Path, judge: Path) -> list[str]:
    return ["--classifier", str(classifier), "--judge", str(judge), "--device", "cpu"]


def test_score_writes_verdicts_to_stdout_and_dead_letters_aside(
    tmp_path: Path, tiny_classifier_dir: Path, tiny_judge_dir: Path
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(
        b'{"id": "a", "text": "\xec\x95\x88\xeb\x85\x95"}\n{"id": "b"}\n\n{"id": "c", "text": "hello"}\n'
    )
    dead = tmp_path / "dead.jsonl"
    proc = run(
        "score",
        "--kind",
        "comment",
        "--input",
        str(src),
        "--no-cache",
        "--dead-letter",
        str(dead),
        *tiny_models(tiny_classifier_dir, tiny_judge_dir),
    )
    assert proc.returncode == 0, proc.stderr.decode()
    verdicts = [orjson.loads(line) for line in proc.stdout.splitlines()]
    assert [v["id"] for v in verdicts] == ["a", "c"]
    assert [orjson.loads(line)["reason"] for line in dead.read_bytes().splitlines()] == ["missing_field"]


def test_score_without_a_redis_says_so_once_and_scores_uncached(
    tmp_path: Path, tiny_classifier_dir: Path, tiny_judge_dir: Path, redis_server: Any
) -> None:
    """Offline scoring where no Redis runs: one line naming the address (never its password), no
    warning per retry; with a Redis that answers, the second run is served from its cache."""
    import os

    from moderator.local.embedded import free_port

    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"id": "a", "text": "score me once"}\n')
    args = (
        "score",
        "--kind",
        "comment",
        "--input",
        str(src),
        *tiny_models(tiny_classifier_dir, tiny_judge_dir),
    )

    def score(redis_url: str) -> subprocess.CompletedProcess[bytes]:
        env = {**os.environ, "MODERATOR_REDIS_URL": redis_url}
        return subprocess.run(
            [sys.executable, "-m", "moderator", *args], capture_output=True, timeout=180, env=env
        )

    down = score(f"redis://user:hunter2@127.0.0.1:{free_port()}/0")
    assert down.returncode == 0, down.stderr.decode()
    err = down.stderr.decode()
    assert "no Redis answers at redis://127.0.0.1:" in err and "hunter2" not in err
    assert "redis get failed" not in err
    assert [orjson.loads(line)["cached"] for line in down.stdout.splitlines()] == [False]
    first, second = score(redis_server.url), score(redis_server.url)
    assert "no Redis answers" not in first.stderr.decode()
    assert [orjson.loads(line)["cached"] for line in second.stdout.splitlines()] == [True]


def test_eval_reports_metrics_on_a_labelled_file_and_split(
    tmp_path: Path, tiny_classifier_dir: Path, tiny_judge_dir: Path
) -> None:
    rows = [{"text": f"문장 {i}", "labels": ["men"] if i % 2 else ["clean"]} for i in range(12)]
    data = tmp_path / "labelled.jsonl"
    data.write_bytes(b"\n".join(orjson.dumps(r) for r in rows))
    split = tmp_path / "split.json"
    split.write_bytes(orjson.dumps({"train": list(range(6)), "dev": list(range(6, 12))}))
    proc = run(
        "eval",
        "--kind",
        "comment",
        "--input",
        str(data),
        "--split",
        str(split),
        "--json",
        *tiny_models(tiny_classifier_dir, tiny_judge_dir),
    )
    assert proc.returncode == 0, proc.stderr.decode()
    report = orjson.loads(proc.stdout)
    assert report["n"] == 6 and "macro_f1" in report
    # the CLI's LRAP is sklearn's on the same model's probabilities for the dev rows
    from sklearn.metrics import label_ranking_average_precision_score

    from moderator.runtime.loader import load_classifier
    from moderator.runtime.options import RuntimeOptions
    from topics import LABEL_KEYS

    dev = rows[6:]
    probs = load_classifier(tiny_classifier_dir, RuntimeOptions(device="cpu")).predict(
        [r["text"] for r in dev]
    )
    truth = [[1 if k in r["labels"] else 0 for k in LABEL_KEYS] for r in dev]
    expected = label_ranking_average_precision_score(truth, probs.probs)
    assert report["lrap"] == pytest.approx(expected, abs=1e-6)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_bytes(
        b"\n".join(orjson.dumps({"prompt": "q", "reply": f"답 {i}", "unsafe": i % 2}) for i in range(8))
    )
    proc = run(
        "eval",
        "--kind",
        "reply",
        "--input",
        str(pairs),
        "--json",
        *tiny_models(tiny_classifier_dir, tiny_judge_dir),
    )
    assert proc.returncode == 0, proc.stderr.decode()
    report = orjson.loads(proc.stdout)
    assert report["n"] == 8 and "auroc" in report and "accuracy" in report


def test_missing_model_dir_is_a_clear_error(tmp_path: Path) -> None:
    proc = run(
        "score", "--kind", "comment", "--input", "-", "--classifier", str(tmp_path / "nope"), "--no-cache"
    )
    assert proc.returncode == 2
    assert b"nope" in proc.stderr and b"Fix" in proc.stderr


def test_eval_needs_a_file_or_sources_and_sources_needs_a_multitask_model(
    tmp_path: Path, tiny_classifier_dir: Path, tiny_judge_dir: Path
) -> None:
    proc = run("eval", *tiny_models(tiny_classifier_dir, tiny_judge_dir))
    assert proc.returncode == 2 and b"--kind and --input" in proc.stderr
    proc = run("eval", "--sources", str(tmp_path), *tiny_models(tiny_classifier_dir, tiny_judge_dir))
    assert proc.returncode == 2 and b"encoder-multitask" in proc.stderr
    assert b"Traceback" not in proc.stderr
