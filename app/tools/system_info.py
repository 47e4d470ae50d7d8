"""The `system_info` tool: CPU, memory, disk, load and uptime of the gateway's host, through
psutil (off by default: it describes the server to whoever may call tools)."""

from __future__ import annotations

import asyncio
import os
import platform
import time
from typing import Any

import psutil

from app.tools.context import Register, ToolContext

CPU_SAMPLE_SECONDS = 0.5
SOURCE = "psutil on the gateway's host"


def register_tools(register: Register, context: ToolContext) -> None:
    register(system_info)


async def system_info() -> dict[str, Any]:
    """The gateway host's CPU use, memory, disk space, load average and uptime."""
    return await asyncio.to_thread(_snapshot)


def _snapshot() -> dict[str, Any]:
    """Blocks for CPU_SAMPLE_SECONDS while CPU use is measured, hence run in a thread."""
    memory = psutil.virtual_memory()
    swap = psutil.swap_memory()
    disk = psutil.disk_usage(os.path.abspath(os.sep))
    uptime = time.time() - psutil.boot_time()
    return {
        "system": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "cpu": {
            "percent": psutil.cpu_percent(interval=CPU_SAMPLE_SECONDS),
            "logical_cores": psutil.cpu_count(logical=True),
            "physical_cores": psutil.cpu_count(logical=False),
        },
        "load_average": [round(load, 2) for load in psutil.getloadavg()],
        "memory": _usage(memory.total, memory.total - memory.available, memory.percent),
        "swap": _usage(swap.total, swap.used, swap.percent),
        "disk": {"path": os.path.abspath(os.sep), **_usage(disk.total, disk.used, disk.percent)},
        "uptime": _duration(uptime),
        "uptime_seconds": round(uptime),
        "source": SOURCE,
    }


def _usage(total: int, used: int, percent: float) -> dict[str, Any]:
    return {"total": _size(total), "used": _size(used), "percent": percent}


def _size(count: float) -> str:
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    index = 0
    while count >= 1024 and index < len(units) - 1:
        count /= 1024
        index += 1
    return f"{count:.1f} {units[index]}"


def _duration(seconds: float) -> str:
    minutes, _ = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h {minutes}m" if days else f"{hours}h {minutes}m"
