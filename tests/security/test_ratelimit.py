"""Rate limits per key in Redis: GCRA requests per minute, tokens per minute charged after each
answer, Retry-After, what Redis failures do, and one limit shared by two gateway processes."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from openai.types.chat import ChatCompletionMessageParam

from app.errors import ProviderUnavailable, RateLimited
from app.main import create_app
from app.security.identity import Identity
from app.security.ratelimit import charge, counted
from app.state.ratelimit import RateLimiter, redis_keys
from app.state.redis import connect
from tests.conftest import MakeGateway, gateway_settings, start_redis
from tests.fakes.openai_upstream import OpenAIUpstreamState
from tests.fakes.serve import free_port, serve
from tests.security.test_keys import entry
from tests.test_cli import child_env, serving

CHAT: dict[str, Any] = {"model": "openai/gpt-test", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    redis = connect(redis_url, 2.0)
    yield redis
    await redis.aclose()


@pytest.fixture
async def dead_client(tmp_path: Path) -> AsyncIterator[aioredis.Redis]:
    redis = connect(f"unix://{tmp_path}/no-server.sock", 0.5)
    yield redis
    await redis.aclose()


def key(rpm: int | None = None, tpm: int | None = None, key_id: str = "abcdef012345") -> Identity:
    return Identity(key_id=key_id, owner="alice", rpm=rpm, tpm=tpm)


async def admitted(limiter: RateLimiter, identity: Identity, n: int) -> int:
    results = [await limiter.check(identity) for _ in range(n)]
    return sum(result is None for result in results)


@pytest.mark.parametrize(
    ("path", "is_counted"),
    [
        ("/v1/chat/completions", True),
        ("/chat/completions", True),
        ("/v1/embeddings", True),
        ("/v1/modelsx", True),
        ("/v1/models", False),
        ("/models", False),
        ("/v1/models/openai/gpt-4o", False),
        ("/models/x", False),
    ],
)
def test_what_is_counted(path: str, is_counted: bool) -> None:
    assert counted(path) is is_counted


async def test_a_burst_of_rpm_is_admitted_then_429_with_retry_after(
    client: aioredis.Redis,
) -> None:
    limiter = RateLimiter(client, fail_open=False)
    identity = key(rpm=5)
    assert await admitted(limiter, identity, 5) == 5
    error = await limiter.check(identity)
    assert isinstance(error, RateLimited)
    assert error.status == 429
    assert error.code == "rate_limit_exceeded"
    assert error.retry_after == 12  # one request every 60 s / 5
    assert error.headers() == {"Retry-After": "12"}
    assert "5 requests per minute" in error.message
    assert await limiter.check(identity) is not None  # a refusal uses nothing


async def test_requests_come_back_at_the_rate(client: aioredis.Redis) -> None:
    limiter = RateLimiter(client, fail_open=False)
    identity = key(rpm=600)  # one every 100 ms
    started = time.monotonic()
    count = 0
    while await limiter.check(identity) is None:
        count += 1
    elapsed = time.monotonic() - started
    assert 600 <= count <= 600 + elapsed / 0.1 + 1
    error = await limiter.check(identity)
    assert error is not None
    assert error.retry_after == 1  # under 100 ms, at least 1 s
    refused_at = time.monotonic()
    for _ in range(100):
        await asyncio.sleep(0.005)
        if await limiter.check(identity) is None:
            break
    assert time.monotonic() - refused_at < 0.15  # the next one within 100 ms
    assert await limiter.check(identity) is not None  # and only one


async def test_each_key_has_its_own_limit_in_expiring_redis_keys(client: aioredis.Redis) -> None:
    limiter = RateLimiter(client, fail_open=False)
    a, b = key(rpm=2, key_id="aaaaaaaaaaaa"), key(rpm=2, key_id="bbbbbbbbbbbb")
    assert await admitted(limiter, a, 3) == 2
    assert await admitted(limiter, b, 3) == 2
    assert sorted(await client.keys("ratelimit:*")) == [
        b"ratelimit:{aaaaaaaaaaaa}:rpm",
        b"ratelimit:{bbbbbbbbbbbb}:rpm",
    ]
    ttl = await client.pttl(redis_keys("aaaaaaaaaaaa")[0])
    assert 59_000 < ttl <= 60_000


async def test_tokens_are_charged_after_the_answer(client: aioredis.Redis) -> None:
    limiter = RateLimiter(client, fail_open=False)
    identity = key(tpm=100)
    assert await limiter.check(identity) is None
    await limiter.charge(identity, 60)
    assert await limiter.check(identity) is None  # 60 of 100 used
    await limiter.charge(identity, 60)
    error = await limiter.check(identity)  # 120 used: 20 over, paid off in 12 s
    assert isinstance(error, RateLimited)
    assert error.retry_after == 12
    assert "100 tokens per minute" in error.message
    ttl = await client.pttl(redis_keys(identity.key_id or "")[1])
    assert 71_000 < ttl <= 72_000


async def test_a_request_refused_for_tokens_uses_no_request(client: aioredis.Redis) -> None:
    limiter = RateLimiter(client, fail_open=False)
    identity = key(rpm=2, tpm=10)
    await limiter.charge(identity, 50)
    assert await admitted(limiter, identity, 5) == 0
    assert not await client.exists(redis_keys(identity.key_id or "")[0])


async def test_keys_without_limits_never_reach_redis(dead_client: aioredis.Redis) -> None:
    limiter = RateLimiter(dead_client, fail_open=False)
    assert await limiter.check(key()) is None
    await limiter.charge(key(rpm=5), 100)


async def test_the_script_is_loaded_again_after_a_flush(client: aioredis.Redis) -> None:
    limiter = RateLimiter(client, fail_open=False)
    assert await limiter.check(key(rpm=5)) is None
    await client.script_flush()
    assert await limiter.check(key(rpm=5)) is None
    await client.script_flush()
    await limiter.charge(key(tpm=5), 10)
    assert await limiter.check(key(rpm=5, tpm=5)) is not None


async def test_fail_closed_answers_503_when_redis_stops(tmp_path: Path) -> None:
    process = start_redis(tmp_path)
    redis = connect(f"unix://{tmp_path}/redis.sock", 0.5)
    try:
        limiter = RateLimiter(redis, fail_open=False)
        assert await limiter.check(key(rpm=5)) is None
        process.terminate()
        process.wait(10)
        error = await limiter.check(key(rpm=5))
        assert isinstance(error, ProviderUnavailable)
        assert error.status == 503
        assert "rate limiting is unavailable: Redis is unreachable" in error.message
        assert isinstance(await limiter.check(key(rpm=5)), ProviderUnavailable)
    finally:
        await redis.aclose()
        if process.poll() is None:
            process.kill()
            process.wait(10)


async def test_fail_open_admits_and_warns_once(
    dead_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = RateLimiter(dead_client, fail_open=True)
    with caplog.at_level(logging.WARNING, "app.state.ratelimit"):
        for _ in range(3):
            assert await limiter.check(key(rpm=1)) is None
        await limiter.charge(key(tpm=1), 10)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert warnings[0].startswith("rate limiting is off while Redis is unreachable: ")


async def test_a_failed_charge_is_logged_not_raised(
    dead_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "app.state.ratelimit"):
        await RateLimiter(dead_client, fail_open=False).charge(key(tpm=1), 10)
    assert caplog.records[0].getMessage().startswith("tokens not counted: Redis is unreachable")


# Through a real gateway.


def limited_app(keys_file: Path, upstream_url: str, **settings: Any) -> FastAPI:
    """The gateway with two extra routes: who the request comes from, and a charge of tokens
    (as the chat route does after an answer)."""
    app = create_app(
        gateway_settings(
            api_keys_file=keys_file,
            openai_base_url=f"{upstream_url}/v1",
            openai_api_key="upstream-key",
            **settings,
        )
    )

    async def whoami(request: Request) -> dict[str, Any]:
        identity: Identity = request.state.identity
        return {"key_id": identity.key_id, "owner": identity.owner}

    async def spend(request: Request, tokens: int) -> dict[str, Any]:
        await charge(request, tokens)
        return {}

    app.add_api_route("/whoami", whoami)
    app.add_api_route("/spend", spend, methods=["POST"])
    return app


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.json"
    items = [
        entry("alice-key", owner="alice", rpm=3),
        entry("bob-key", owner="bob", tpm=100),
        entry("service-key"),
    ]
    path.write_text(json.dumps(items), encoding="utf-8")
    return path


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_429_over_http_with_owner_and_uncounted_routes(
    keys_file: Path, openai_server: tuple[str, OpenAIUpstreamState]
) -> None:
    with serve(limited_app(keys_file, openai_server[0])) as url, httpx.Client(base_url=url) as http:
        alice = bearer("alice-key")
        who = http.get("/whoami", headers=alice)
        assert who.json() == {"key_id": entry("alice-key")["hash"][7:19], "owner": "alice"}
        for _ in range(5):
            for path in ("/v1/models", "/models", "/v1/models/openai/gpt-test", "/health"):
                assert http.get(path, headers=alice).status_code == 200, path
        for _ in range(2):
            assert http.post("/v1/chat/completions", json=CHAT, headers=alice).status_code == 200
        refused = http.post("/v1/chat/completions", json=CHAT, headers=alice)
        assert refused.status_code == 429, refused.text
        assert 1 <= int(refused.headers["retry-after"]) <= 20
        assert refused.headers["content-type"] == "application/json"
        assert "x-request-id" in refused.headers
        assert refused.json()["error"] == {
            "message": refused.json()["error"]["message"],
            "type": "rate_limit_error",
            "param": None,
            "code": "rate_limit_exceeded",
        }
        assert "3 requests per minute" in refused.json()["error"]["message"]
        assert http.get("/v1/models", headers=alice).status_code == 200
        assert http.get("/whoami", headers=bearer("service-key")).json()["owner"] is None
        assert http.get("/whoami").status_code == 401
        with openai.OpenAI(base_url=f"{url}/v1", api_key="alice-key", max_retries=0) as sdk:
            with pytest.raises(openai.RateLimitError) as info:
                sdk.chat.completions.create(model=CHAT["model"], messages=CHAT["messages"])
            assert info.value.code == "rate_limit_exceeded"


def test_tokens_charged_through_the_request_state(
    keys_file: Path, openai_server: tuple[str, OpenAIUpstreamState]
) -> None:
    with serve(limited_app(keys_file, openai_server[0])) as url, httpx.Client(base_url=url) as http:
        bob, service = bearer("bob-key"), bearer("service-key")
        assert http.post("/spend", params={"tokens": 150}, headers=bob).status_code == 200
        refused = http.get("/whoami", headers=bob)
        assert refused.status_code == 429
        assert 29 <= int(refused.headers["retry-after"]) <= 30  # 50 over 100 a minute
        assert "100 tokens per minute" in refused.json()["error"]["message"]
        for _ in range(10):  # no limits: no charge, no count
            assert http.post("/spend", params={"tokens": 10**6}, headers=service).status_code == 200
            assert http.get("/whoami", headers=service).status_code == 200


def test_without_keys_requests_are_anonymous(
    openai_server: tuple[str, OpenAIUpstreamState],
) -> None:
    app = create_app(gateway_settings(rate_limit_rpm=1))

    async def whoami(request: Request) -> dict[str, Any]:
        return {"identity": repr(request.state.identity)}

    app.add_api_route("/whoami", whoami)
    with serve(app) as url:
        for _ in range(3):  # unlimited, and (the gateway being open) allowed everything
            resp = httpx.get(f"{url}/whoami")
            assert resp.json() == {
                "identity": "Identity(key_id=None, owner=None, rpm=None, tpm=None, rag=True, "
                "admin=True)"
            }


@pytest.mark.parametrize("fail_open", [False, True])
def test_redis_down_over_http(
    tmp_path: Path,
    keys_file: Path,
    openai_server: tuple[str, OpenAIUpstreamState],
    fail_open: bool,
) -> None:
    process = start_redis(tmp_path)
    try:
        app = limited_app(
            keys_file,
            openai_server[0],
            redis_url=f"unix://{tmp_path}/redis.sock",
            redis_timeout=0.5,
            rate_limit_fail_open=fail_open,
        )
        with serve(app) as url, httpx.Client(base_url=url) as http:
            alice = bearer("alice-key")
            assert http.get("/whoami", headers=alice).status_code == 200
            process.terminate()
            process.wait(10)
            resp = http.get("/whoami", headers=alice)
            assert http.get("/v1/models", headers=alice).status_code == 200
            assert http.get("/whoami", headers=bearer("service-key")).status_code == 200
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    if fail_open:
        assert resp.status_code == 200, resp.text
    else:
        assert resp.status_code == 503, resp.text
        error = resp.json()["error"]
        assert "rate limiting is unavailable: Redis is unreachable" in error["message"]
        assert error["code"] == "provider_unavailable"


# Two real gateway processes on one Redis share one limit.

LIMIT = 10


def test_two_processes_share_one_limit(
    tmp_path: Path, redis_url: str, openai_server: tuple[str, OpenAIUpstreamState]
) -> None:
    upstream_url, _ = openai_server
    urls: list[str] = []
    with ExitStack() as stack:
        for name in ("a", "b"):
            port = free_port()
            env = child_env(
                HOST="127.0.0.1",
                PORT=str(port),
                REDIS_URL=redis_url,
                API_KEYS="k",
                RATE_LIMIT_RPM=str(LIMIT),
                OPENAI_BASE_URL=f"{upstream_url}/v1",
                OPENAI_API_KEY="x",
                ENABLED_TOOLS="none",
                DATA_DIR=str(tmp_path / name),
            )
            urls.append(stack.enter_context(serving(env, tmp_path / f"{name}.log", port)))

        with httpx.Client(headers=bearer("k"), timeout=10) as http:
            for i in range(4):  # each process admits, in turn
                resp = http.post(f"{urls[i % 2]}/v1/chat/completions", json=CHAT)
                assert resp.status_code == 200, resp.text

        async def burst() -> tuple[list[int], float]:
            async with httpx.AsyncClient(headers=bearer("k"), timeout=10) as http:
                started = time.monotonic()
                responses = await asyncio.gather(
                    *(
                        http.post(f"{urls[i % 2]}/v1/chat/completions", json=CHAT)
                        for i in range(3 * LIMIT)
                    )
                )
                return [r.status_code for r in responses], time.monotonic() - started

        statuses, elapsed = asyncio.run(burst())
    assert elapsed < 60 / LIMIT  # no request came back during the burst
    assert set(statuses) == {200, 429}, statuses
    assert 4 + statuses.count(200) == LIMIT, statuses


@pytest.mark.parametrize("stream", [False, True])
def test_tokens_per_minute_are_charged_after_each_answer(
    make_gateway: MakeGateway, stream: bool
) -> None:
    url = make_gateway(api_keys=["tpm-key"], rate_limit_tpm=20)
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="tpm-key", max_retries=0)
    model = "openai/gpt-test"
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi " * 30}]
    if stream:
        assert list(client.chat.completions.create(model=model, messages=messages, stream=True))
    else:
        usage = client.chat.completions.create(model=model, messages=messages).usage
        assert usage is not None
        assert usage.prompt_tokens > 20
    time.sleep(0.2)  # the charge is made just after the answer has been sent
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model=model, messages=messages)
    assert refused.value.code == "rate_limit_exceeded"
    assert int(refused.value.response.headers["Retry-After"]) >= 1
