"""Batch in, verdicts and dead letters out: validate → normalise → cache → models → policy → cache.

No Kafka here, so the faust worker, ``moderator score`` and the tests share one code path and give the
same verdict for the same input. Models run in worker threads (one per model lane) so the event loop
(and with it the Kafka heartbeats) never blocks on ONNX Runtime.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from typing import TypeVar

import numpy as np

from moderator.core.cache import VerdictCache, cache_key_of_parts, cache_key_prefix, human_key
from moderator.core.language import LanguageDetector
from moderator.core.policy import Decision, Policy
from moderator.core.redis_store import RedisStore
from moderator.core.registry import IdRegistry, Revision, id_key
from moderator.core.verdict_core import VerdictCore
from moderator.metrics import Metrics
from moderator.runtime.base import ReplyJudge, TextClassifier
from moderator.runtime.windowed import Scored, WindowedClassifier, WindowedJudge, WindowedMultitask
from moderator.runtime.windows import WindowConfig
from topics import (
    LABEL_KEYS,
    CommentIn,
    DeadLetter,
    InputLimits,
    InvalidRecord,
    Reason,
    ReplyIn,
    SourcePosition,
    Verdict,
    decode_comment,
    decode_reply,
    normalize_text,
)
from topics.labels import MULTITASK_KEYS, SAFETY_KEYS
from topics.records import ORIGINAL_TRUNCATED, Kind
from topics.reviews import HumanVerdict
from topics.text import content_parts, revision_and_hash_of_parts

#: Score keys of a multitask verdict: the ten UnSmile keys, then the safety categories.
SCORE_KEYS = (*LABEL_KEYS, *SAFETY_KEYS)

log = logging.getLogger(__name__)
T = TypeVar("T")

#: ``Verdict``'s fields in order: ``Pipeline._verdict`` passes them by position.
_VERDICT_FIELDS = (
    "id",
    "kind",
    "flagged",
    "action",
    "categories",
    "scores",
    "unsafe",
    "cached",
    "model",
    "policy",
    "latency_ms",
    "ts",
    "truncated",
    "source",
    "revision",
    "supersedes",
    "human",
    "language",
    "why",
    "profile",
)
if tuple(f.name for f in fields(Verdict)) != _VERDICT_FIELDS:  # pragma: no cover - caught at import
    raise ImportError(
        "topics.Verdict's fields changed: update Pipeline._verdict, which passes them by position"
    )


@dataclass(slots=True)
class InputMessage:
    """One raw record as it came off a topic (or a line of a ``score`` input file)."""

    kind: Kind
    value: bytes
    source: SourcePosition | None = None
    received: float = field(default_factory=time.perf_counter)


@dataclass(slots=True)
class BatchResult:
    verdicts: list[Verdict]
    dead_letters: list[DeadLetter]


@dataclass(slots=True)
class Prepared:
    """A batch after ``Pipeline.prepare``: its valid records, and dead letters (input index, letter)."""

    items: list[_Item]
    dead: list[tuple[int, DeadLetter]]


@dataclass(slots=True)
class _Item:
    index: int
    message: InputMessage
    record: CommentIn | ReplyIn
    text: str
    prompt: str | None
    key: str
    revision: str
    id_key: str
    human: str  # where a reviewer's decision on this text would be (moderator.core.cache.human_key)


#: Policy decisions kept per (cache key, profile) (``Pipeline._decide``).
DECISION_MEMO = 8192


class _DecisionMemo(dict[tuple[str, str | None], tuple[VerdictCore, Decision, dict[str, float]]]):
    """(cache key, profile) → the verdict core seen under that key, the decision of ``policy`` (or its
    profile) on it, and the core's scores by key: a core and a policy decide it entirely, and a
    repeat's verdict copies the scores.

    Keyed by the cache key (a string, whose hash Python keeps) rather than the core (hashing 17 floats
    per record cost more than the rest of the look-up); the core is kept beside the decision and
    compared, so a key that comes back with other scores (another worker's cached core) is decided
    again, never given the decision of the scores seen first.
    """

    policy: Policy | None = None


def _position(message: InputMessage, index: int) -> str:
    src = message.source
    return f"{src.topic}/{src.partition}/{src.offset}" if src else f"local/{index}"


class Pipeline:
    def __init__(
        self,
        classifier: TextClassifier,
        judge: ReplyJudge,
        policy: Policy,
        *,
        cache: VerdictCache | None = None,
        ids: IdRegistry | None = None,
        limits: InputLimits | None = None,
        metrics: Metrics | None = None,
        windows: WindowConfig | None = None,
        language: LanguageDetector | None = None,
    ) -> None:
        self.classifier = classifier
        self.judge = judge
        # long texts are read whole, window by window, through the models' own batching
        self.windowed_classifier = WindowedClassifier(classifier, windows)
        self.windowed_judge = WindowedJudge(judge, windows)
        multitask = getattr(classifier, "multitask", None)
        self.windowed_multitask = (
            None if multitask is None else WindowedMultitask(multitask, MULTITASK_KEYS, windows)
        )
        self.language = language or LanguageDetector()
        self.language.warm()
        self.policy = policy
        self.cache = cache
        self.ids = ids or IdRegistry()
        self.limits = limits or InputLimits()
        self.metrics = metrics or Metrics()
        self.model_ids: dict[str, str | None] = {"classifier": classifier.model_id, "judge": judge.model_id}
        self._model_key = f"{classifier.model_id}|{judge.model_id}"
        # one thread per model lane: two batches in flight (an API's micro-batches) can each be in the
        # models at once, while the lanes themselves bound how many model runs share the cores
        self.model_lanes = max(model_lanes(classifier), model_lanes(judge))
        self._executor = ThreadPoolExecutor(
            max_workers=self.model_lanes, thread_name_prefix="moderator-model"
        )
        self._decisions = _DecisionMemo()
        #: write-backs not yet done, oldest first: (id key → revision, cache key → core) per batch
        self._unsettled: list[tuple[dict[str, Revision], dict[str, VerdictCore]]] = []
        self.metrics.provider.labels(model="classifier", provider=classifier.provider).set(1)
        self.metrics.provider.labels(model="judge", provider=judge.provider).set(1)
        for name, model in (("classifier", classifier), ("judge", judge)):
            _record_device_kind(self.metrics, name, model)

    async def close(self) -> None:
        self._executor.shutdown(wait=True)
        for store in {id(s): s for s in (self.cache and self.cache.store, self.ids.store) if s}.values():
            await store.close()

    # -- steps -------------------------------------------------------------------------------------

    def _decode(self, messages: Sequence[InputMessage]) -> tuple[list[_Item], list[tuple[int, DeadLetter]]]:
        items: list[_Item] = []
        dead: list[tuple[int, DeadLetter]] = []
        limits = self.limits
        # hash state of (models, policy, kind), shared by the batch's keys; the policy may be swapped live
        prefixes = {
            kind: cache_key_prefix(self._model_key, self.policy.version, kind)
            for kind in ("comment", "reply")
        }
        for index, message in enumerate(messages):
            kind = message.kind
            try:
                record: CommentIn | ReplyIn
                if kind == "comment":
                    record = decode_comment(message.value, limits)
                    text, prompt = normalize_text(record.text), None
                else:
                    record = decode_reply(message.value, limits)
                    text, prompt = normalize_text(record.reply), normalize_text(record.prompt)
            except InvalidRecord as exc:
                dead.append((index, self._dead_letter(message, exc.reason, exc.detail, exc.record_id)))
                continue
            # text and prompt are normalised already (content_revision would normalise them again) and
            # encoded once for the cache key, the revision and the content hash
            parts = content_parts(text, prompt)
            revision, content_hash = revision_and_hash_of_parts(kind, parts)
            source = message.source
            items.append(
                _Item(
                    index,
                    message,
                    record,
                    text,
                    prompt,
                    cache_key_of_parts(prefixes[kind], parts),
                    revision,
                    # ids are per input topic; a local file's records (score) per kind
                    id_key(source.topic if source else f"local-{kind}", record.id),
                    human_key(content_hash),
                )
            )
        return items, dead

    async def _run_model(self, name: str, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        result = await loop.run_in_executor(self._executor, fn)
        self.metrics.model_latency.labels(model=name).observe(time.perf_counter() - started)
        return result

    async def _score(self, items: list[_Item]) -> tuple[dict[str, VerdictCore], dict[str, str]]:
        """Run the models once per distinct cache key; returns key → verdict core, key → model error."""
        unique: dict[str, _Item] = {}
        for item in items:
            unique.setdefault(item.key, item)
        if not unique:
            return {}, {}
        keys = list(unique)
        if self.windowed_multitask is not None:
            return await self._score_multitask(self.windowed_multitask, unique)
        texts = [unique[k].text for k in keys]
        reply_keys = [k for k in keys if unique[k].message.kind == "reply"]
        pairs = [(unique[k].prompt or "", unique[k].text) for k in reply_keys]
        errors: dict[str, str] = {}

        languages = await self._run_model("language", lambda: self.language.detect_many(texts))
        probs, cls_trunc, cls_spans = await self._classify(keys, texts, errors)
        unsafe: dict[str, tuple[float, bool, tuple[int, int] | None]] = {}
        if pairs:
            unsafe = await self._judge(reply_keys, pairs, errors)
        cores: dict[str, VerdictCore] = {}
        rows = VerdictCore.rounded_rows(probs)  # one numpy call for the batch, not a round() per score
        for i, key in enumerate(keys):
            if key in errors:
                continue
            judged = unsafe.get(key)
            spans = cls_spans[i]
            if judged is not None and judged[2] is not None:
                spans = {**spans, "unsafe": judged[2]}
            cores[key] = VerdictCore(
                tuple(rows[i]),
                None if judged is None else round(judged[0], 6),
                bool(cls_trunc[i] or (judged is not None and judged[1])),
                language=languages[i],
                # a one-window text (nearly all) has no spans: no sort, no tuples built
                spans=VerdictCore.span_tuples(spans) if spans else (),
            )
        return cores, errors

    async def _score_multitask(
        self, windowed: WindowedMultitask, unique: dict[str, _Item]
    ) -> tuple[dict[str, VerdictCore], dict[str, str]]:
        """One pass per record: comments as single texts, replies as (message, reply) pairs, long texts
        in windows; every hate and safety score plus ``unsafe`` (replies) from the same forward pass. A
        failing batch is retried row by row, so one bad row becomes one dead letter, not a lost batch."""
        keys = list(unique)
        languages = dict(
            zip(
                keys,
                await self._run_model(
                    "language", lambda: self.language.detect_many([unique[k].text for k in keys])
                ),
                strict=True,
            )
        )
        comment_keys = [k for k in keys if unique[k].message.kind == "comment"]
        reply_keys = [k for k in keys if unique[k].message.kind == "reply"]
        cores: dict[str, VerdictCore] = {}
        errors: dict[str, str] = {}
        jobs = (
            ("classifier", comment_keys, windowed.score_comments, [unique[k].text for k in comment_keys]),
            (
                "judge",
                reply_keys,
                windowed.score_replies,
                [(unique[k].prompt or "", unique[k].text) for k in reply_keys],
            ),
        )
        width = len(SCORE_KEYS)
        for name, job_keys, fn, args in jobs:
            if not job_keys:
                continue
            try:
                out: Scored = await self._run_model(name, lambda fn=fn, args=args: fn(args))  # type: ignore[misc]
                self._observe(name, out)
                rows = [(key, out, i) for i, key in enumerate(job_keys)]
            except Exception:
                log.exception("%s failed on a batch of %d; retrying row by row", name, len(job_keys))
                rows = []
                for key, arg in zip(job_keys, args, strict=True):
                    try:
                        one: Scored = await self._run_model(name, lambda fn=fn, a=arg: fn([a]))  # type: ignore[misc]
                        self._observe(name, one)
                        rows.append((key, one, 0))
                    except Exception as exc:
                        errors[key] = f"{name} failed: {type(exc).__name__}: {exc}"[:500]
            is_reply = name == "judge"
            # rounded like VerdictCore.of, but in one numpy call per result instead of per score (a
            # batch's rows share one result; a row-by-row retry gives each row its own)
            rounded: dict[int, list[list[float]]] = {}
            for _, res, _ in rows:
                if id(res) not in rounded:
                    rounded[id(res)] = VerdictCore.rounded_rows(res.scores)
            for key, res, i in rows:
                # a comment has no judge score, so no `unsafe` span either
                spans = res.spans[i]
                if spans and not is_reply:
                    spans = {k: v for k, v in spans.items() if k != "unsafe"}
                row = rounded[id(res)][i]
                cores[key] = VerdictCore(
                    tuple(row[:width]),
                    row[width] if is_reply else None,
                    bool(res.truncated[i]),
                    language=languages[key],
                    spans=VerdictCore.span_tuples(spans) if spans else (),
                )
        if reply_keys and getattr(self.judge, "multitask", None) is not windowed.model:
            # another judge (e.g. KoSafeGuard on a GPU) decides `unsafe`; the scores stay the multitask model's
            scored = [k for k in reply_keys if k in cores]
            pairs = [(unique[k].prompt or "", unique[k].text) for k in scored]
            judged = await self._judge(scored, pairs, errors)
            for key, (p_unsafe, truncated, span) in judged.items():
                core = cores[key]
                spans = {label: (a, b) for label, a, b in core.spans if label != "unsafe"}
                if span is not None:
                    spans["unsafe"] = span
                cores[key] = VerdictCore.of(
                    core.scores, p_unsafe, core.truncated or truncated, language=core.language, spans=spans
                )
            for key in scored:
                if key in errors:
                    cores.pop(key, None)
        return cores, errors

    def _observe(self, model: str, scored: Scored) -> None:
        # rows = windows: a long text costs (and counts) one row per window
        self.metrics.model_rows.labels(model=model).inc(scored.windows)
        self.metrics.padded_tokens.labels(model=model).observe(scored.padded_tokens)

    async def _classify(
        self, keys: list[str], texts: list[str], errors: dict[str, str]
    ) -> tuple[np.ndarray, list[bool], list[dict[str, tuple[int, int]]]]:
        try:
            out = await self._run_model("classifier", lambda: self.windowed_classifier.score(texts))
            self._observe("classifier", out)
            return out.scores, out.truncated, out.spans
        except Exception:
            log.exception("classifier failed on a batch of %d; retrying text by text", len(texts))
        probs = np.zeros((len(texts), len(LABEL_KEYS)), dtype=np.float32)
        truncated = [False] * len(texts)
        spans: list[dict[str, tuple[int, int]]] = [{} for _ in texts]
        for i, text in enumerate(texts):
            try:
                one = await self._run_model(
                    "classifier",
                    lambda t=text: self.windowed_classifier.score([t]),  # type: ignore[misc]
                )
                self._observe("classifier", one)
                probs[i], truncated[i], spans[i] = one.scores[0], one.truncated[0], one.spans[0]
            except Exception as exc:
                errors[keys[i]] = f"classifier failed: {type(exc).__name__}: {exc}"[:500]
        return probs, truncated, spans

    async def _judge(
        self, keys: list[str], pairs: list[tuple[str, str]], errors: dict[str, str]
    ) -> dict[str, tuple[float, bool, tuple[int, int] | None]]:
        try:
            out = await self._run_model("judge", lambda: self.windowed_judge.score(pairs))
            self._observe("judge", out)
            return {
                k: (float(out.scores[i, 0]), out.truncated[i], out.spans[i].get("unsafe"))
                for i, k in enumerate(keys)
            }
        except Exception:
            log.exception("judge failed on a batch of %d; retrying pair by pair", len(pairs))
        result: dict[str, tuple[float, bool, tuple[int, int] | None]] = {}
        for key, pair in zip(keys, pairs, strict=True):
            try:
                one = await self._run_model("judge", lambda p=pair: self.windowed_judge.score([p]))  # type: ignore[misc]
                self._observe("judge", one)
                result[key] = (float(one.scores[0, 0]), one.truncated[0], one.spans[0].get("unsafe"))
            except Exception as exc:
                errors[key] = f"judge failed: {type(exc).__name__}: {exc}"[:500]
        return result

    # -- the batch -----------------------------------------------------------------------------------

    async def process(self, messages: Sequence[InputMessage]) -> BatchResult:
        """Verdict or dead-letter every message, in input order; never raises on bad input."""
        return await self.finish(self.prepare(messages))

    def prepare(self, messages: Sequence[InputMessage]) -> Prepared:
        """The batch's first step, no I/O: decode, validate, normalise, keys. ``finish`` does the rest.

        Split so that a caller keeping batches in order (the stream worker) can prepare the next batch
        while the previous one waits for Redis.
        """
        self.metrics.batch_size.observe(len(messages))
        return Prepared(*self._decode(messages))

    async def finish(self, prepared: Prepared) -> BatchResult:
        """Cache and registry look-up, models on misses, policy, write-back, of a prepared batch."""
        result, settle = await self.finish_ordered(prepared)
        await settle
        return result

    async def finish_ordered(self, prepared: Prepared) -> tuple[BatchResult, Awaitable[None]]:
        """``finish`` up to the write-back, which is returned (``settle``, to be awaited) instead.

        Until it is written, a later batch's look-up reads this batch's fresh verdict cores and
        revisions from memory (``_unsettled``), as it would from Redis afterwards: a caller that keeps
        batches in order (the stream worker) can start the next batch while this one's write is on its
        way, and still emit this batch's verdicts only once it is written.
        """
        items, dead = prepared.items, prepared.dead
        # one MGET for the ids, model verdicts and human decisions; a human decision wins over any model
        previous, cached, decided = await self._look_up(items)
        for unsettled_ids, unsettled_cores in self._unsettled:  # oldest first: the newest write wins
            for i, it in enumerate(items):
                revision = unsettled_ids.get(it.id_key)
                if revision is not None:
                    previous[i] = revision
                if cached[i] is None:
                    cached[i] = unsettled_cores.get(it.key)
        hits = {it.key: core for it, core in zip(items, cached, strict=True) if core is not None}
        humans = {it.human: human for it, human in zip(items, decided, strict=True) if human is not None}
        misses = [it for it in items if it.key not in hits and it.human not in humans]
        fresh, errors = await self._score(misses)
        self.metrics.cache_hits.inc(len(items) - len(misses))
        self.metrics.cache_misses.inc(len(misses))

        # items are in input order, so the verdicts appended below are too
        verdicts: list[Verdict] = []
        first_use: set[str] = set()
        # the revision last verdicted per id, moving forward through the batch in input order
        latest: dict[str, Revision | None] = {}
        for item, before in zip(items, previous, strict=True):
            latest.setdefault(item.id_key, before)
        before_batch = dict(latest)
        clock = (time.time(), time.perf_counter())
        policy = self.policy  # one policy for the whole batch, even if it is swapped meanwhile
        routed = bool(policy.bots or policy.channels)
        for item in items:
            if item.key in errors:
                dead.append(
                    (
                        item.index,
                        self._dead_letter(item.message, Reason.MODEL_ERROR, errors[item.key], item.record.id),
                    )
                )
                continue
            human = humans.get(item.human)
            if human is not None:
                verdicts.append(self._human_verdict(item, human, self._supersedes(item, latest)))
                continue
            core = hits.get(item.key)
            was_cached = core is not None
            if core is None:
                core = fresh[item.key]
                # Later copies of a text within one batch reuse the first copy's scores: cached, not re-run.
                was_cached = item.key in first_use
                first_use.add(item.key)
            supersedes = self._supersedes(item, latest)
            # a reply's bot or a comment's channel may route it to one of the policy's profiles
            decider = (
                policy.for_record(getattr(item.record, "bot", None), getattr(item.record, "channel", None))
                if routed
                else policy
            )
            decision, scores = self._decide(item.key, core, policy, decider)
            verdicts.append(
                self._verdict(item, core, decision, scores, was_cached, supersedes, clock, decider)
            )
        # Ids are recorded only now that their verdicts exist: a model error leaves no trace.
        # ``_supersedes`` puts a new Revision in ``latest`` for every id it moves forward, and the ones
        # read from Redis or memory are never changed, so identity says which ids moved (an equality
        # test per id compared every field)
        revisions = [
            (key, rev) for key, rev in latest.items() if rev is not None and rev is not before_batch[key]
        ]
        unsettled = (dict(revisions), dict(fresh))
        self._unsettled.append(unsettled)
        settle = self._settle(unsettled, list(fresh.items()), revisions)
        if errors:  # model errors join the decoder's dead letters, which are in input order already
            dead.sort(key=lambda pair: pair[0])
        # one metric update per label set and batch, not per record (labels() costs a lock and a lookup)
        actions = Counter((v.kind, v.action) for v in verdicts)
        categories = Counter(c for v in verdicts for c in v.categories)
        reasons = Counter(d.reason for _, d in dead)
        for (kind, action), n in actions.items():
            self.metrics.verdicts.labels(kind=kind, action=action).inc(n)
        for category, n in categories.items():
            self.metrics.categories.labels(category=category).inc(n)
        for reason, n in reasons.items():
            self.metrics.dead_letters.labels(reason=reason).inc(n)
        return BatchResult(verdicts, [d for _, d in dead]), settle

    async def _settle(
        self,
        unsettled: tuple[dict[str, Revision], dict[str, VerdictCore]],
        fresh: list[tuple[str, VerdictCore]],
        revisions: list[tuple[str, Revision]],
    ) -> None:
        try:
            await self._write_back(fresh, revisions)
        finally:
            self._unsettled.remove(unsettled)

    def _shared_store(self) -> RedisStore | None:
        """The Redis both the verdict cache and the id registry use, if they use the same one."""
        store = self.ids.store
        return store if store is not None and self.cache is not None and self.cache.store is store else None

    async def _look_up(
        self, items: list[_Item]
    ) -> tuple[list[Revision | None], list[VerdictCore | None], list[HumanVerdict | None]]:
        """Id registry, verdict cache and human decisions in one MGET per batch when they share a Redis."""
        n = len(items)
        if not items:
            return [], [], []
        id_keys = [it.id_key for it in items]
        cache_keys = [it.key for it in items]
        human_keys = [it.human for it in items]
        store = self._shared_store()
        if store is not None and self.cache is not None:
            # only the records count as uncached when Redis is down (the ids have a local fallback)
            values = await store.get_many("get", id_keys + cache_keys + human_keys, records=n)
            cached, decided = self.cache.decode_with_human(values[n:], n)
            return self.ids.resolve(id_keys, values[:n]), cached, decided
        previous = await self.ids.latest(id_keys)
        if self.cache is None:
            return previous, [None] * n, [None] * n
        cached, decided = await self.cache.get_with_human(cache_keys, human_keys)
        return previous, cached, decided

    async def _write_back(
        self, fresh: list[tuple[str, VerdictCore]], revisions: list[tuple[str, Revision]]
    ) -> None:
        """Fresh verdict cores and newly verdicted revisions: one script call when Redis is shared."""
        store = self._shared_store()
        if store is not None and self.cache is not None:
            entries = self.cache.entries(fresh) + self.ids.remember(revisions)
            await store.set_each("set", entries)
            return
        if self.cache is not None and fresh:
            await self.cache.set_many(fresh)
        await self.ids.record(revisions)

    @staticmethod
    def _supersedes(item: _Item, latest: dict[str, Revision | None]) -> str | None:
        """The revision this record replaces, and move the id's latest revision forward to it.

        An older record of the same partition coming round again (redelivery after a crash) neither
        supersedes nor replaces the newer revision already verdicted.
        """
        src = item.message.source
        partition, offset = (f"{src.topic}/{src.partition}", src.offset) if src else ("", -1)
        before = latest[item.id_key]
        if before is not None and before.is_later_than(partition, offset):
            return None
        latest[item.id_key] = Revision(item.revision, partition, offset)
        return before.revision if before is not None and before.revision != item.revision else None

    def _decide(
        self, key: str, core: VerdictCore, policy: Policy, decider: Policy
    ) -> tuple[Decision, dict[str, float]]:
        """``decider``'s decision on a core (``policy`` or one of its profiles), and the core's scores by
        key; a repeat (same cache key, same core) under the same profile reuses both while ``policy``
        stays."""
        memo = self._decisions
        if memo.policy is not policy:  # swapped live: nothing decided under the old one is reused
            memo.policy = policy
            memo.clear()
        memo_key = (key, decider.profile)
        entry = memo.get(memo_key)
        if entry is not None and (entry[0] is core or entry[0] == core):
            return entry[1], entry[2]
        if entry is None and len(memo) >= DECISION_MEMO:
            del memo[next(iter(memo))]  # the oldest entry
        keys = SCORE_KEYS if len(core.scores) > len(LABEL_KEYS) else LABEL_KEYS
        decision = self._decide_now(core, decider)
        scores = dict(zip(keys, core.scores, strict=True))
        memo[memo_key] = (core, decision, scores)
        return decision, scores

    @staticmethod
    def _decide_now(core: VerdictCore, decider: Policy) -> Decision:
        return decider.decide(
            # the scores as float32 values, as the models gave them, in one conversion
            np.asarray(core.scores, dtype=np.float32).tolist(),
            core.unsafe,
            core.truncated,
            language=core.language,
            spans={label: (start, end) for label, start, end in core.spans},
        )

    def _verdict(
        self,
        item: _Item,
        core: VerdictCore,
        decision: Decision,
        scores: dict[str, float],
        was_cached: bool,
        supersedes: str | None,
        clock: tuple[float, float],
        decider: Policy,
    ) -> Verdict:
        """``clock``: (wall, perf counter) read once per batch; its verdicts leave together. ``decider``:
        the policy (or profile) that decided it; ``scores``: the core's scores by key (``_decide``)."""
        message = item.message
        kind = message.kind
        # by position, in _VERDICT_FIELDS order (checked at import): a 20-keyword call costs ~3× as much
        return Verdict(
            item.record.id,
            kind,
            decision.flagged,
            decision.action,
            decision.categories,
            scores.copy(),  # the memo's, shared by repeats of the core: each verdict owns its copy
            core.unsafe if kind == "reply" else None,
            was_cached,
            self.model_ids,
            decider.version,
            round((clock[1] - message.received) * 1000.0, 3),
            clock[0],
            core.truncated,
            message.source,
            item.revision,
            supersedes,
            None,  # human
            core.language,
            decision.why,
            decider.profile,
        )

    def _human_verdict(self, item: _Item, decided: HumanVerdict, supersedes: str | None) -> Verdict:
        """A repeat of a reviewed text: the reviewer's action and labels, marked as human."""
        action = decided.action
        return Verdict(
            id=item.record.id,
            kind=item.message.kind,
            flagged=action != "allow",
            action=action,
            categories=decided.categories,
            scores={k: decided.scores.get(k, 0.0) for k in LABEL_KEYS},
            unsafe=decided.unsafe if item.message.kind == "reply" else None,
            cached=True,
            model=self.model_ids,
            policy=self.policy.version,
            latency_ms=round((time.perf_counter() - item.message.received) * 1000.0, 3),
            ts=time.time(),
            source=item.message.source,
            revision=item.revision,
            supersedes=supersedes,
            human=decided.marker(),
        )

    def _dead_letter(
        self, message: InputMessage, reason: Reason, detail: str, record_id: str | None
    ) -> DeadLetter:
        # A dead letter keeps at most max_record_bytes of the original: a record the broker accepted
        # can be far larger, and a dead letter the producer cannot send would stall the partition.
        original = message.value
        cap = self.limits.max_record_bytes
        if len(original) > cap:
            original = original[:cap]
            detail = f"{detail} ({ORIGINAL_TRUNCATED} {cap} bytes; see source)"
        return DeadLetter(
            reason=reason.value,
            detail=detail,
            source=message.source,
            original=original,
            id=record_id,
            kind=message.kind,
            ts=time.time(),
        )


def _record_device_kind(metrics: Metrics, name: str, model: object) -> None:
    """``moderator_model_device_kind`` for a model that knows its device kind (the ONNX encoders; a
    multitask model's seams through the model they share)."""
    inner = getattr(model, "multitask", model)
    kind = getattr(inner, "device_kind", None)
    if not isinstance(kind, str):
        return
    calibrated_on = getattr(inner, "calibration_device", "") or ""
    matches = getattr(inner, "calibration_matches", None) is not False
    metrics.device_kind.labels(model=name, kind=kind, calibrated_on=calibrated_on).set(1 if matches else 0)


def model_lanes(model: object) -> int:
    """How many runs at once ``model`` takes (``moderator.runtime.batching.Lanes``); 1 if it does not say."""
    lanes = getattr(model, "lanes", None)
    count = getattr(lanes, "count", 1)
    return count if isinstance(count, int) and count > 0 else 1
