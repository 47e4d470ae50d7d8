"""Docker mode: the running containers labelled WATCHDOG_LABEL, found through the Docker
Engine API every WATCHDOG_INTERVAL, each watched by a task of its own: restarted when Docker's
health check calls it unhealthy, or when the watchdog's own probe of its `ai-gateway.watchdog.url`
fails WATCHDOG_FAILURES times in a row; each under its own restart budget. A container out of
budget is left alone (and alerted on) until it is healthy again."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx

from app.config import OpsSettings
from app.watchdog.alerts import Alerts
from app.watchdog.budget import restart_budget
from app.watchdog.engine import Container, Engine, EngineError
from app.watchdog.memory import check_memory
from app.watchdog.signals import Stop
from app.watchdog.watch import Watch

log = logging.getLogger("app.watchdog")

UNREACHABLE = "docker_unreachable"


async def watch_docker(
    settings: OpsSettings, alerts: Alerts, client: httpx.AsyncClient, stop: Stop
) -> int:
    engine = Engine(settings.docker_socket)
    tasks: dict[str, asyncio.Task[None]] = {}
    log.info(
        "watching the containers labelled %s through %s, every %g s",
        settings.watchdog_label,
        settings.docker_socket,
        settings.watchdog_interval,
    )
    try:
        while True:
            try:
                containers = await engine.containers(settings.watchdog_label)
            except EngineError as exc:
                alerts.fire(UNREACHABLE, alerts.host, f"the watchdog cannot reach Docker: {exc}")
            else:
                alerts.resolve(UNREACHABLE, alerts.host, "the watchdog reaches Docker again")
                _follow(containers, tasks, engine, settings, alerts, client)
            check_memory(alerts, settings.alert_memory_percent)
            if await stop.sleep(settings.watchdog_interval):
                log.info("%s: the watchdog stops", stop.signum.name)
                return 0
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        await engine.aclose()


def _follow(
    containers: list[Container],
    tasks: dict[str, asyncio.Task[None]],
    engine: Engine,
    settings: OpsSettings,
    alerts: Alerts,
    client: httpx.AsyncClient,
) -> None:
    """A task for each container newly listed; none for those no longer listed."""
    listed = {container.id: container for container in containers}
    for container_id, container in listed.items():
        if container_id not in tasks:
            how = f"probing {container.url}" if container.url else "by its Docker health check"
            log.info("watching container %s (%s), %s", container.name, container_id[:12], how)
            watch = Watch(container.name, container.url, settings, alerts, client)
            tasks[container_id] = asyncio.create_task(
                _watch_container(container, watch, engine, settings)
            )
    for container_id in list(tasks):
        if container_id not in listed:
            log.info("container %s is no longer running with the label", container_id[:12])
            tasks.pop(container_id).cancel()


async def _watch_container(
    container: Container, watch: Watch, engine: Engine, settings: OpsSettings
) -> None:
    budget = restart_budget(settings)
    given_up = False
    watch.started()
    tick = time.monotonic()
    while True:
        tick = max(tick + settings.watchdog_interval, time.monotonic())
        await asyncio.sleep(tick - time.monotonic())
        try:
            health = await engine.health(container.id)
        except EngineError as exc:
            log.warning("container %s not inspected: %s", container.name, exc)
            continue
        if health == "unhealthy":
            watch.down("Docker's health check calls it unhealthy")
        elif health == "starting" or not await watch.check():
            if health == "healthy" and container.url is None:
                watch.up()
            given_up = given_up and not watch.answers
            continue
        if given_up:
            continue
        delay = budget.take(time.monotonic())
        if delay is None:
            watch.exhausted(budget, "the watchdog leaves it alone until it is healthy again")
            given_up = True
            continue
        log.info("restarting container %s in %.1f s", container.name, delay)
        await asyncio.sleep(delay)
        try:
            await engine.restart(container.id, settings.watchdog_grace)
        except EngineError as exc:
            log.error("container %s not restarted: %s", container.name, exc)
            continue
        log.info("container %s restarted", container.name)
        watch.started(restarted=True)
        tick = time.monotonic()
