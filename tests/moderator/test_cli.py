"""The CLI's offline commands on tiny real models: score (stdout/stderr contract) and eval."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
