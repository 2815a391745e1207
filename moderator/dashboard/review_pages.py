"""The review pages: overview, queue, item, the texts endpoint the queue's script calls, decisions."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import orjson
from aiohttp import web
from aiokafka.errors import KafkaError

from moderator.core.policy import LabelBand, Policy
from moderator.dashboard.accounts import Session
from moderator.dashboard.overview import build_overview, label_name, read_lag, scrape
from moderator.dashboard.store import SORTS, STATUSES, Item, QueueFilter
from moderator.dashboard.web import KEY, Dashboard, render, safe_next
from topics import SourcePosition, normalize_text
from topics.reviews import Decision, Review, VerdictRef, content_hash, review_labels

log = logging.getLogger(__name__)

PAGE_SIZE = 50


async def overview(request: web.Request) -> web.Response:
    dash = request.app[KEY]
    assert dash.http is not None
    # the three network reads (worker /metrics, group offsets, index lag) run side by side
    workers, (lag, lag_error), index_lag = await asyncio.gather(
        scrape(dash.http, dash.metrics_urls), read_lag(dash.group_lag), dash.indexer.lag()
    )
    data = build_overview(dash.store, request.query.get("window", "1h"), workers, lag, lag_error)
    return render(request, "overview.html", o=data, index_lag=index_lag, group=dash.group_lag.group)


def _filter(query: Any) -> QueueFilter:
    def pick(name: str, allowed: tuple[str, ...] | None = None, default: str = "") -> str:
        value = str(query.get(name, default)).strip()[:256]
        return value if allowed is None or value in allowed else default

    return QueueFilter(
        status=pick("status", STATUSES, "open"),
        sort=pick("sort", tuple(SORTS), "oldest"),
        kind=pick("kind", ("comment", "reply")),
        category=pick("category"),
        action=pick("action", ("review", "block", "allow")),
        channel=pick("channel"),
        language=pick("language"),
        search=pick("q"),
    )


def _filter_query(flt: QueueFilter, **extra: Any) -> str:
    params = {
        "status": flt.status,
        "sort": flt.sort,
        "kind": flt.kind,
        "category": flt.category,
        "action": flt.action,
        "channel": flt.channel,
        "language": flt.language,
        "q": flt.search,
        **extra,
    }
    return urlencode({k: v for k, v in params.items() if v not in ("", None)})


async def queue(request: web.Request) -> web.Response:
    dash = request.app[KEY]
    flt = _filter(request.query)
    try:
        page = max(1, int(request.query.get("page", "1")))
    except ValueError:
        page = 1
    items, total = dash.store.queue(flt, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    return render(
        request,
        "queue.html",
        items=items,
        total=total,
        page=page,
        pages=max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE),
        flt=flt,
        here="/queue?" + _filter_query(flt, page=page),
        page_query=lambda p: "/queue?" + _filter_query(flt, page=p),
        facets=dash.facets(),
        categories=[*review_labels("reply")],
        done=request.query.get("done", ""),
        done_decision=request.query.get("decision", ""),
    )


def _source(item: Item) -> SourcePosition | None:
    src = item.verdict.get("source")
    if not src:
        return None
    return SourcePosition(str(src["topic"]), int(src["partition"]), int(src["offset"]))


def _texts(item: Item, raw: bytes | None) -> dict[str, Any]:
    """The readable parts of an input record, or why there are none."""
    if raw is None:
        return {"missing": "the input record is no longer on its topic (retention) or was never found"}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {"missing": "the input record is not readable JSON"}
    if not isinstance(data, dict):
        return {"missing": "the input record is not a JSON object"}
    if item.kind == "reply":
        return {"prompt": str(data.get("prompt", "")), "text": str(data.get("reply", ""))}
    return {"text": str(data.get("text", ""))}


async def _fetch_texts(dash: Dashboard, items: list[Item]) -> dict[str, dict[str, Any]]:
    positions = {i.id: _source(i) for i in items}
    raw = await dash.reader.fetch(p for p in positions.values() if p is not None)
    out = {}
    for item in items:
        pos = positions[item.id]
        out[item.id] = _texts(item, raw.get(pos) if pos is not None else None)
    return out


def _deciding(verdict: dict[str, Any], policy: Policy) -> Policy:
    """The loaded policy's profile that decided ``verdict`` (its ``profile``), else the policy itself."""
    name = verdict.get("profile")
    return policy.profiles.get(name, policy) if isinstance(name, str) else policy


def _band(policy: Policy, key: str) -> LabelBand | None:
    """The band a score key is decided by: an UnSmile label's or a safety category's."""
    return policy.labels.get(key) or policy.safety.get(key)


def _why(item: Item, policy: Policy) -> list[str]:
    """The reasons this verdict is flagged, in the terms of the policy (or profile) that decided it."""
    v = item.verdict
    same = v.get("policy") == policy.version
    policy = _deciding(v, policy)
    reasons = []
    if v.get("profile"):
        reasons.append(f"decided under the policy's {v['profile']!r} profile")
    if v.get("human"):
        h = v["human"]
        reasons.append(f"a reviewer ({h.get('reviewer')}) decided {h.get('decision')} on this text earlier")
    # a category named below its threshold (an attribute level or the leading-category rule) says so
    # in the verdict's own `why`, with the level it reached: quoting the threshold would be false
    named_below = {
        w["label"]: w
        for w in v.get("why") or ()
        if w.get("rule") == "label" and w.get("label") and w.get("detail") and w.get("threshold") is not None
    }
    for key in item.categories:
        score = float(v["scores"].get(key, 0.0))
        band = _band(policy, key)
        below = named_below.get(key)
        if below is not None:
            reasons.append(_named_below(key, score, below))
        elif band is not None and same:
            line = f"{label_name(key)}: {score:.3f} ≥ threshold {band.threshold:.3f}"
            if band.block is not None and score >= band.block:
                line += f" and ≥ block band {band.block:.2f}"
            reasons.append(line)
        else:
            reasons.append(f"{label_name(key)}: {score:.3f} (over its threshold in {v.get('policy')})")
    unsafe = v.get("unsafe")
    if unsafe is not None and same and unsafe >= policy.judge_review:
        line = f"judge: P(unsafe) {unsafe:.3f} ≥ review {policy.judge_review:.3f}"
        if policy.judge_block is not None and unsafe >= policy.judge_block:
            line += f" and ≥ block {policy.judge_block:.2f}"
        reasons.append(line)
    elif unsafe is not None and not same and not item.categories:
        reasons.append(f"judge: P(unsafe) {unsafe:.3f} (over its review level in {v.get('policy')})")
    if v.get("truncated"):
        reasons.append("the text was longer than the model's input and was cut")
    return reasons


def _named_below(key: str, score: float, why: dict[str, Any]) -> str:
    """A category the policy named under its threshold, from the verdict's ``why`` entry."""
    detail = str(why["detail"])
    level = float(why["threshold"])
    if detail.startswith("attributed"):
        return (
            f"{label_name(key)}: {score:.3f} ≥ attribute level {level:.3f} "
            "(named because the judge flagged the reply)"
        )
    if detail.startswith("leading"):
        return (
            f"{label_name(key)}: {score:.3f}, the highest safety score (≥ {level:.3f}) on a flagged reply that "
            "reached no category's level: a guess at which harm"
        )
    return f"{label_name(key)}: {score:.3f} ≥ {level:.3f} ({detail})"


async def item_page(request: web.Request) -> web.Response:
    dash = request.app[KEY]
    item_id = request.match_info["item_id"]
    item = dash.store.item(item_id)
    if item is None:
        return render(request, "error.html", status=404, message=f"no flagged item with id {item_id!r}")
    texts = (await _fetch_texts(dash, [item]))[item.id]
    v = item.verdict
    same = v.get("policy") == dash.policy.version
    policy = _deciding(v, dash.policy)
    rows = []
    for key, score in v["scores"].items():
        band = _band(policy, key)
        rows.append(
            {
                "key": key,
                "score": float(score),
                "threshold": band.threshold if band and same else None,
                "block": band.block if band and same else None,
                "hit": key in item.categories,
            }
        )
    if v.get("unsafe") is not None:
        rows.append(
            {
                "key": "unsafe",
                "score": float(v["unsafe"]),
                "threshold": policy.judge_review if same else None,
                "block": policy.judge_block if same else None,
                "hit": same and float(v["unsafe"]) >= policy.judge_review,
            }
        )
    return render(
        request,
        "item.html",
        item=item,
        texts=texts,
        rows=rows,
        why=_why(item, dash.policy),
        same_policy=same,
        loaded_policy=dash.policy.version,
        history=dash.store.history(item.id),
        labels=review_labels(item.kind),  # type: ignore[arg-type]
        back=safe_next(request.query.get("back", "/queue")),
    )


async def texts_api(request: web.Request) -> web.Response:
    dash = request.app[KEY]
    ids = request.query.getall("id", [])[:PAGE_SIZE]
    items = [i for i in (dash.store.item(x) for x in ids) if i is not None]
    return web.json_response(await _fetch_texts(dash, items), dumps=lambda o: orjson.dumps(o).decode())


async def decide(request: web.Request) -> web.StreamResponse:
    dash = request.app[KEY]
    session: Session = request["session"]
    form = await request.post()
    back = safe_next(str(form.get("back", "/queue")))
    if not session.user.role.can_decide:
        return render(
            request,
            "error.html",
            status=403,
            message=f"your role ({session.user.role.value}) can read the queue but not decide",
        )
    item = dash.store.item(str(form.get("id", "")))
    if item is None:
        return render(request, "error.html", status=404, message="no such flagged item")
    try:
        decision = Decision(str(form.get("decision", "")))
    except ValueError:
        return render(
            request, "error.html", status=400, message="decision must be approve, remove or relabel"
        )
    allowed = review_labels(item.kind)  # type: ignore[arg-type]
    chosen = [str(x) for x in form.getall("labels", [])]
    bad = [x for x in chosen if x not in allowed]
    if bad:
        return render(request, "error.html", status=400, message=f"unknown label(s): {', '.join(bad)}")
    if decision is Decision.APPROVE:
        labels: list[str] = []
    elif decision is Decision.REMOVE:
        labels = chosen or list(item.categories)
        if not labels and item.verdict.get("unsafe") is not None:
            labels = ["unsafe"]
    else:
        if not chosen:
            return render(request, "error.html", status=400, message="relabel: choose at least one category")
        labels = chosen
    src = _source(item)
    raw = (await dash.reader.fetch([src])).get(src) if src else None
    texts = _texts(item, raw)
    if "missing" in texts:
        return render(request, "error.html", status=409, message=f"cannot decide: {texts['missing']}")
    prompt = normalize_text(texts["prompt"]) if item.kind == "reply" else None
    digest = content_hash(item.kind, normalize_text(texts["text"]), prompt)
    v = item.verdict
    review = Review(
        review_id=uuid.uuid4().hex,
        id=item.id,
        kind=item.kind,  # type: ignore[arg-type]
        content_hash=digest,
        decision=decision,
        labels=labels,
        reviewer=session.user.name,
        ts=time.time(),
        verdict=VerdictRef(
            topic=item.v_topic,
            partition=item.v_partition,
            offset=item.v_offset,
            action=item.action,
            categories=item.categories,
            model=dict(v.get("model") or {}),
            policy=str(v.get("policy")),
            scores={str(k): float(x) for k, x in v["scores"].items()},
            unsafe=v.get("unsafe"),
        ),
        source=src,
        note=str(form.get("note", ""))[:1000],
        revision=v.get("revision") if isinstance(v.get("revision"), str) else None,
    )
    try:
        await dash.producer.send_and_wait(
            dash.topics.reviews, orjson.dumps(review.to_dict()), key=item.id.encode()
        )
    except KafkaError as exc:
        log.warning("dashboard: decision on %s not saved: %s", item.id, exc)
        message = f"the decision was not saved: the broker did not take it ({type(exc).__name__}); try again"
        return render(request, "error.html", status=503, message=message)
    dash.indexer.record_review(review)
    await dash.indexer.write_overrides([digest])
    log.info("dashboard: %s decided %s on %s", session.user.name, decision.value, item.id)
    sep = "&" if "?" in back else "?"
    raise web.HTTPSeeOther(f"{back}{sep}{urlencode({'done': item.id, 'decision': decision.value})}")
