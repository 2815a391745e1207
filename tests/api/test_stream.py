"""The streaming output rail (WebSocket ``/v1/stream``) on a real server with the bundled models."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from moderator.client import ModeratorClient
from moderator.settings import DEFAULT_POLICY
from tests.api.conftest import ServerProcess

PROMPT = "오늘 기분이 어때?"
CLEAN_DELTAS = ["안녕하세요! ", "오늘 날씨가 ", "정말 좋네요. ", "산책하기 좋은 날이에요. "]
UNSAFE_DELTAS = ["씨발 개새끼야 ", "꺼져 진짜 역겹다"]
# a travel answer the bundled model allows as a reply at every increment (a string of unrelated
# everyday sentences is not: to "how are you?" the multitask model scores it unsafe ~0.5-0.9 by its
# eighth to twelfth sentence, a known over-flag listed in its card, and the rail would stop it)
TRAVEL_PROMPT = "제주도 여행 코스 추천해 줘"
TRAVEL_DELTAS = [
    "첫째 날에는 성산일출봉에 올라 일출을 보는 걸 추천해요. ",
    "점심은 근처 식당에서 고기국수를 드셔 보세요. ",
    "오후에는 섭지코지 해안 산책로를 따라 걸어 보세요. ",
    "둘째 날에는 한라산 영실 코스를 천천히 올라 보세요. ",
    "저녁에는 동문시장에서 다양한 간식을 맛볼 수 있어요. ",
]


async def _call(ws: aiohttp.ClientWebSocketResponse, frame: dict[str, Any] | str) -> dict[str, Any]:
    await ws.send_str(frame if isinstance(frame, str) else orjson.dumps(frame).decode())
    answer: dict[str, Any] = orjson.loads((await ws.receive(timeout=30)).data)
    return answer


def test_a_reply_that_turns_unsafe_halfway_is_stopped(server: ServerProcess) -> None:
    async def run() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        async with aiohttp.ClientSession() as http, http.ws_connect(server.url + "/v1/stream") as ws:
            assert (await _call(ws, {"type": "start", "id": "turn-1", "prompt": PROMPT}))["type"] == "started"
            frames = []
            for delta in [*CLEAN_DELTAS, *UNSAFE_DELTAS]:
                frames.append(await _call(ws, {"type": "delta", "text": delta}))
                if frames[-1]["type"] == "stop":
                    break
            after = await _call(ws, {"type": "delta", "text": "계속"})
            return frames, after

    frames, after = asyncio.run(run())
    assert [f["type"] for f in frames] == ["verdict"] * len(CLEAN_DELTAS) + ["stop"], (
        "stopped at the unsafe delta"
    )
    assert all(f["verdict"]["action"] == "allow" for f in frames[:-1])
    stop = frames[-1]
    assert stop["verdict"]["flagged"] and stop["verdict"]["action"] in ("review", "block")
    assert "profanity" in stop["verdict"]["categories"]
    assert stop["verdict"]["id"] == f"turn-1#{len(CLEAN_DELTAS) + 1}"
    final = stop["final"]
    assert final["id"] == "turn-1" and final["kind"] == "reply" and final["flagged"]
    assert stop["chars"] == len("".join(CLEAN_DELTAS) + UNSAFE_DELTAS[0])
    assert after["type"] == "error" and after["code"] == "turn_stopped"
    assert server.metrics()['moderator_api_stream_turns_total{outcome="stopped"}'] >= 1


def test_final_verdict_equals_the_verdict_on_the_whole_reply(
    start_server: Callable[..., ServerProcess],
) -> None:
    """No cache, so both sides run the models: the rail's final record is the replies endpoint's."""
    server = start_server(redis_url="")
    reply = "".join(TRAVEL_DELTAS)

    async def run() -> dict[str, Any]:
        async with aiohttp.ClientSession() as http, http.ws_connect(server.url + "/v1/stream") as ws:
            await _call(ws, {"type": "start", "id": "turn-2", "prompt": TRAVEL_PROMPT})
            for delta in TRAVEL_DELTAS:
                frame = await _call(ws, {"type": "delta", "text": delta})
                assert frame["type"] == "verdict" and frame["verdict"]["action"] == "allow"
            return await _call(ws, {"type": "end"})

    final = asyncio.run(run())
    assert final["type"] == "final" and final["chars"] == len(reply)
    status, whole = server.post("/v1/replies", {"id": "turn-2", "prompt": TRAVEL_PROMPT, "reply": reply})
    assert status == 200 and whole["cached"] is False and final["verdict"]["cached"] is False
    for key in (
        "id",
        "kind",
        "flagged",
        "action",
        "categories",
        "scores",
        "unsafe",
        "model",
        "policy",
        "truncated",
    ):
        assert final["verdict"][key] == whole[key], key


def test_each_increment_costs_a_bounded_window(server: ServerProcess) -> None:
    prompt, deltas = TRAVEL_PROMPT, TRAVEL_DELTAS  # allowed at every increment (see TRAVEL_DELTAS)
    n = 100

    async def run() -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as http, http.ws_connect(server.url + "/v1/stream") as ws:
            await _call(ws, {"type": "start", "id": "long-turn", "prompt": prompt, "stop_on": "block"})
            return [await _call(ws, {"type": "delta", "text": deltas[i % len(deltas)]}) for i in range(n)]

    frames = asyncio.run(run())
    assert all(f["type"] == "verdict" for f in frames), [f for f in frames if f["type"] != "verdict"][:1]
    assert frames[-1]["chars"] > 1800
    widths = [f["window_chars"] for f in frames]
    assert max(widths) <= 200 + max(map(len, deltas)) + 4, "context (200 chars) + the new text"
    whole_each_time = sum(f["chars"] for f in frames)
    assert sum(widths) < whole_each_time / 2, "rescoring the whole reply per increment would be quadratic"


def test_protocol_errors_keep_the_connection(server: ServerProcess) -> None:
    async def run() -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as http, http.ws_connect(server.url + "/v1/stream") as ws:
            answers = [
                await _call(ws, {"type": "delta", "text": "x"}),
                await _call(ws, "{broken"),
                await _call(ws, {"type": "dance"}),
                await _call(ws, {"type": "start", "prompt": PROMPT}),
                await _call(ws, {"type": "start", "id": "t", "prompt": 5}),
                await _call(ws, {"type": "start", "id": "t", "stop_on": "never"}),
                await _call(ws, {"type": "start", "id": "t", "extra": 1}),
                await _call(ws, {"type": "start", "id": "t", "prompt": PROMPT}),
                await _call(ws, {"type": "delta", "text": 3}),
                await _call(ws, {"type": "delta", "text": "가" * 9000}),
                await _call(ws, {"type": "end"}),
            ]
            await ws.send_bytes(b"\x00\x01")
            answers.append(orjson.loads((await ws.receive(timeout=30)).data))
            answers.append(await _call(ws, {"type": "delta", "text": "안녕하세요"}))
            return answers

    codes = [a.get("code", a["type"]) for a in asyncio.run(run())]
    assert codes == [
        "no_turn",
        "invalid_json",
        "wrong_type",
        "missing_field",
        "wrong_type",
        "wrong_type",
        "unknown_field",
        "started",
        "wrong_type",
        "too_long",
        "empty_text",
        "wrong_type",
        "verdict",
    ]


def test_the_rail_needs_a_key_when_keys_are_set(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(api_keys="rail-key-123456")

    async def run() -> str:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(server.url + "/v1/stream")
            assert refused.value.status == 401
            headers = {"Authorization": "Bearer rail-key-123456"}
            async with http.ws_connect(server.url + "/v1/stream", headers=headers) as ws:
                return str((await _call(ws, {"type": "start", "id": "t", "prompt": PROMPT}))["type"])

    assert asyncio.run(run()) == "started"


def test_a_bots_replies_are_decided_under_its_policy_profile(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """A policy routing one bot to a profile: its replies (whole and streamed) carry the profile's
    action and name, another bot's the base policy's, on the same server."""
    policy = orjson.loads(DEFAULT_POLICY.read_bytes())
    policy.setdefault("profiles", {})["hold-all"] = {
        "judge": {"review": 0.0}
    }  # every reply of a routed bot to review
    policy["bots"] = {"kids-bot": "hold-all"}
    path = tmp_path / "policy.json"
    path.write_bytes(orjson.dumps(policy))
    server = start_server(policy_path=str(path), api_rate_limit="0")
    record = {"id": "r-1", "prompt": TRAVEL_PROMPT, "reply": TRAVEL_DELTAS[0]}
    status, verdicts = server.post("/v1/replies", [{**record, "bot": "kids-bot"}, {**record, "bot": "other"}])
    assert status == 200
    routed, other = verdicts
    assert (routed["action"], routed["profile"]) == ("review", "hold-all")
    assert other["action"] == "allow" and "profile" not in other
    assert routed["unsafe"] == other["unsafe"]  # one score, two decisions
    via_client = ModeratorClient(server.url).reply("r-2", TRAVEL_PROMPT, TRAVEL_DELTAS[0], bot="kids-bot")
    assert via_client["profile"] == "hold-all"

    async def run() -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as http, http.ws_connect(server.url + "/v1/stream") as ws:
            start = {"type": "start", "id": "turn-k", "prompt": TRAVEL_PROMPT, "bot": "kids-bot"}
            assert (await _call(ws, start))["type"] == "started"
            stopped = await _call(ws, {"type": "delta", "text": TRAVEL_DELTAS[0]})
            bad = await _call(ws, {"type": "start", "id": "turn-x", "prompt": "p", "bot": 7})
            return [stopped, bad]

    stopped, bad = asyncio.run(run())
    assert stopped["type"] == "stop" and stopped["final"]["profile"] == "hold-all"
    assert bad["type"] == "error" and bad["code"] == "wrong_type"
