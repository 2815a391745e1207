"""Benchmark: the generative judge with its policy-prefix KV cache against the full prompt, ORT on CPU.

A Llama-architecture judge large enough to matter (~60M parameters: 8 layers, hidden 768, GQA 12/4
heads) with random weights, a byte-level BPE trained on the data, and KoSafeGuard's own prompt,
its policy list trimmed to a ~550-token prefix (and, for comparison, untrimmed). It is exported with the real
``onnx_export.judge.export_judge`` (in a child process: torch stays out of the timing process), then
the worker's ``GenerativeJudge`` scores the same KoSBi dev (context, reply) pairs twice in one run:
prefix-cached (the prefix runs once at load; each batch reuses its keys/values) and full prompt
(``prefix_cache=False``, the prefix recomputed for every pair). Rounds alternate the two. The run
also reports the largest verdict-logit difference between the paths on these pairs.

    python -m bench.judge_prefix --pairs 48 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    REPO,
    Section,
    Stat,
    base_parser,
    command_line,
    finish,
    guard_training,
    load_data,
    table,
    training_running,
)

TARGET_PREFIX = 550
CONFIG: dict[str, Any] = dict(
    hidden_size=768, intermediate_size=2048, num_hidden_layers=8, num_attention_heads=12,
    num_key_value_heads=4, max_position_embeddings=2048, tie_word_embeddings=False,
)  # fmt: skip


def trimmed_template(tokens: Any, target: int) -> str:
    """KoSafeGuard's template with policy lines dropped from the end of the list until the prefix fits."""
    from moderator.runtime.prompt import split_template
    from onnx_export.decoder import wrap_prompt
    from onnx_export.judge import DEFAULT_TEMPLATE

    text = DEFAULT_TEMPLATE.read_text(encoding="utf-8")
    head, tail = text.split("<END UNSAFE CONTENT CATEGORIES>", 1)
    lines = head.rstrip("\n").split("\n")
    while True:
        candidate = "\n".join(lines) + "\n<END UNSAFE CONTENT CATEGORIES>" + tail
        prefix, _ = split_template(wrap_prompt(candidate, "llama3"))
        if len(tokens.encode(prefix, add_special_tokens=False).ids) <= target or len(lines) < 5:
            return candidate
        lines.pop()


def build(work: Path, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Child process: tokenizer, random ~60M-parameter Llama judge, real export. Returns its facts.

    The BPE is trained on all the shared Korean data (UnSmile comments, KoSBi pairs) so Korean text
    takes a realistic number of tokens, closer to a 128k-vocabulary Llama-3 tokenizer than to bytes.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from onnx_export.judge import DEFAULT_TEMPLATE, export_judge
    from tests.fixtures.models import LLAMA3_SPECIALS

    data = load_data()
    # The template repeated so its English words end up whole tokens, as in Llama-3's vocabulary.
    corpus = [DEFAULT_TEMPLATE.read_text(encoding="utf-8")] * 50 + ["safe unsafe", *data.comments]
    corpus += [f"{p} {r}" for p, r in data.pairs]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=8000, special_tokens=LLAMA3_SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        pad_token="<|end_of_text|>",
    )
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(fast), initializer_range=0.05, **CONFIG)
    model = LlamaForCausalLM(config).eval()
    params = sum(p.numel() for p in model.parameters())
    ckpt = work / "checkpoint"
    model.save_pretrained(ckpt)
    fast.save_pretrained(ckpt)
    template = work / "template.txt"
    template.write_text(trimmed_template(tok, TARGET_PREFIX), encoding="utf-8")
    started = time.perf_counter()
    export_judge(ckpt, work / "judge", max_length=1024, template=template, samples=pairs[:4])
    export_s = time.perf_counter() - started
    # The same weights with KoSafeGuard's whole, untrimmed prompt.
    export_judge(ckpt, work / "judge-full-policy", max_length=1536, samples=pairs[:4])
    return {"params": params, "vocab": len(fast), "export_s": export_s}


#: (case, model directory, pair set): the spec'd ~550-token prefix on KoSBi pairs as they come and on
#: the shortest (chat-length) ones, then KoSafeGuard's untrimmed prompt on KoSBi pairs.
CASES = (
    ("kosbi", "judge", "kosbi"),
    ("short", "judge", "short"),
    ("full-policy", "judge-full-policy", "kosbi"),
)


def measure(work: Path, pool: list[tuple[str, str]], n: int, rounds: int, threads: int) -> dict[str, Any]:
    """Timing process (no torch): both judge paths on the same pairs, rounds alternating.

    Pair sets: the first ``n`` KoSBi dev pairs as they come, and the ``n`` shortest (suffix =
    conversation + the template's fixed tail), i.e. chat-length turns. The speed-up follows
    (prefix + suffix) / suffix, so the sets and the two prefix lengths bracket it.
    """
    import numpy as np

    from moderator.runtime.generative_judge import GenerativeJudge
    from moderator.runtime.metadata import read_metadata
    from moderator.runtime.options import RuntimeOptions

    options = RuntimeOptions(
        device="cpu", intra_op_threads=threads, inter_op_threads=1, max_batch_tokens=8192, max_batch_rows=16
    )
    out: dict[str, Any] = {"threads": threads}
    for case, model_dir, set_name in CASES:
        meta = read_metadata(work / model_dir)
        started = time.perf_counter()
        cached = GenerativeJudge(work / model_dir, meta, options, prefix_cache=True)
        prefix_s = time.perf_counter() - started
        full = GenerativeJudge(work / model_dir, meta, options, prefix_cache=False)
        if set_name == "kosbi":
            pairs = pool[:n]
        else:
            lengths = [len(s) for s in cached.encode_pre(pool)[0]]
            pairs = [pool[i] for i in sorted(range(len(pool)), key=lengths.__getitem__)[:n]]
        cached.predict(pool[:16])  # warm-up: allocator, expanded prefix for a full batch
        full.predict(pool[:16])
        times: dict[str, list[float]] = {"cached": [], "full": []}
        outputs: dict[str, Any] = {}
        for _ in range(rounds):
            for name, judge in (("cached", cached), ("full", full)):
                t0 = time.perf_counter()
                outputs[name] = judge.predict(pairs)
                times[name].append(time.perf_counter() - t0)
        suffixes = cached.encode_pre(pairs)[0]
        suffix = [len(s) for s in suffixes]
        logit_diff = max(
            float(
                np.abs(
                    cached.encode_core(suffixes[i : i + 16]) - full.encode_core(suffixes[i : i + 16])
                ).max()
            )
            for i in range(0, len(suffixes), 16)
        )
        out[case] = {
            "pairs": len(pairs),
            "prefix_tokens": cached.prefix_tokens,
            "tail_tokens": cached.prompt.fixed - cached.prefix_tokens,
            "prefix_s": prefix_s,
            "times": times,
            "suffix_mean": float(np.mean(suffix)),
            "suffix_max": int(np.max(suffix)),
            "tokens": {k: v.tokens for k, v in outputs.items()},
            "padded": {k: v.padded_tokens for k, v in outputs.items()},
            "max_diff": float(np.abs(outputs["cached"].unsafe - outputs["full"].unsafe).max()),
            "logit_diff": logit_diff,
        }
    return out


def _child(phase: str, work: Path, n: int, rounds: int, threads: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.judge_prefix", "--phase", phase, "--work", str(work)]
    cmd += ["--pairs", str(n), "--rounds", str(rounds), "--threads", str(threads)]
    subprocess.run(cmd, check=True, cwd=REPO)
    return dict(json.loads((work / f"{phase}.json").read_text()))


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.split("\n\n")[0] if __doc__ else "judge prefix benchmark", rounds=2)
    parser.add_argument("--pairs", type=int, default=48, help="pairs per set and round (default 48)")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (default 2)")
    parser.add_argument("--phase", choices=["build", "measure"], help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    pool = load_data().pairs
    if args.phase:
        if args.phase == "build":
            result = build(args.work, pool[: args.pairs])
        else:
            result = measure(args.work, pool, args.pairs, args.rounds, args.threads)
        (args.work / f"{args.phase}.json").write_text(json.dumps(result))
        return
    guard_training(args)
    busy = bool(training_running())
    with tempfile.TemporaryDirectory(prefix="judge-prefix-") as tmp:
        work = Path(tmp)
        built = _child("build", work, args.pairs, args.rounds, args.threads)
        got = _child("measure", work, args.pairs, args.rounds, args.threads)
    rows = []
    ratios: dict[str, float] = {}
    labels = {
        "kosbi": "{n} (trimmed) | KoSBi dev pairs",
        "short": "{n} (trimmed) | shortest KoSBi dev pairs",
        "full-policy": "{n} (whole policy) | KoSBi dev pairs",
    }
    for case, _, _ in CASES:
        r = got[case]
        cached, full = Stat.of(r["times"]["cached"]), Stat.of(r["times"]["full"])
        rate_c, rate_f = r["pairs"] / cached.median, r["pairs"] / full.median
        ratios[case] = rate_c / rate_f
        token_ratio = (r["prefix_tokens"] + r["suffix_mean"]) / r["suffix_mean"]
        rows.append(
            [
                labels[case].format(n=r["prefix_tokens"]), r["pairs"],
                f"{r['suffix_mean']:.0f} (max {r['suffix_max']})", f"{rate_c:.1f}", f"{rate_f:.2f}",
                f"**{ratios[case]:.1f}×**", f"{token_ratio:.1f}×", f"{r['logit_diff']:.1e}",
            ]
        )  # fmt: skip
    spec = got["kosbi"]
    body = "\n".join(
        [
            f"Judge: Llama architecture, {built['params'] / 1e6:.0f}M parameters (8 layers, hidden 768, "
            f"random weights; {built['vocab']}-token byte-level BPE trained on the shared Korean data), fp32 "
            f"ONNX, LM head pruned to the 2 verdict tokens; KoSafeGuard's prompt in the Llama-3 chat wrapper, "
            f"its policy list trimmed to a {spec['prefix_tokens']}-token prefix (the spec's ~{TARGET_PREFIX}), "
            f"and untrimmed ({got['full-policy']['prefix_tokens']} tokens with this tokenizer). Suffix = the "
            f"conversation plus the template's fixed tail ({spec['tail_tokens']} tokens). Batches of ≤16 "
            f"rows; ONNX Runtime CPU, {got['threads']} intra-op threads; median of {args.rounds} alternating "
            "rounds, both paths in one process.",
            "",
            table(
                [
                    "prefix tokens",
                    "pairs",
                    "n",
                    "suffix tokens",
                    "cached pairs/s",
                    "full pairs/s",
                    "speed-up",
                    "token ratio",
                    "max Δ verdict logit",
                ],
                [[*row[0].split(" | "), *row[1:]] for row in rows],
                "rlrrrrrrr",
            ),  # fmt: skip
            "",
            "The speed-up follows the token ratio (prefix + suffix) / suffix, the tokens the full prompt runs "
            "per token the cached path runs, minus a per-row cost both paths pay alike: every call concatenates "
            "the cached keys/values with the new ones and expands them to all query heads (grouped-query "
            "attention), memory traffic that weighs more on the cheaper cached call. At hidden 768 that "
            "keeps the speed-up under the token ratio; an 8B judge's per-token compute dwarfs it. With the "
            "~550-token prefix the speed-up is "
            f"{ratios['kosbi']:.1f}× on KoSBi pairs and {ratios['short']:.1f}× on the shortest ones; with "
            f"KoSafeGuard's whole policy it is {ratios['full-policy']:.1f}×. The prefix runs once at load "
            f"({spec['prefix_s']:.2f} s, session creation included). Δ verdict logit: largest difference of "
            "the safe/unsafe first-token logits between the two paths on the measured pairs (0 = bit-identical).",
        ]
    )
    if busy:
        body += (
            "\n\n*Measured while another job (a model training) ran on the same cores: absolute rates are "
            "low and noisy; the ratios come from alternating rounds in one process.*"
        )
    section = Section(
        "judge_prefix",
        "Safety judge: policy-prefix KV cache vs full prompt",
        body,
        command_line("bench.judge_prefix", [f"--pairs={args.pairs}", f"--rounds={args.rounds}"]),
    )
    finish(args, section, {"built": built, "measured": got, "ratios": ratios})


if __name__ == "__main__":
    main()
