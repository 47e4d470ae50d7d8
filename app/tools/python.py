"""The `python` tool: run a short program in the sandbox and hand back what it printed."""

from __future__ import annotations

from typing import Any

from app.errors import InvalidRequest, ToolError
from app.security.sandbox import Sandbox, SandboxError
from app.tools.context import Register, ToolContext

_DESCRIPTION = """Run a Python 3 program (standard library only) and return what it prints.
Use it for exact arithmetic, dates, unit conversions, data processing and checking code. Only
stdout and stderr come back, so print() every result you need. No network, no input, an empty
private working directory; at most {timeout:g} s and {memory_mb} MB.

Args:
    code: a complete Python 3 program, such as "import math\\nprint(math.factorial(30))".
"""


def register_tools(register: Register, context: ToolContext) -> None:
    sandbox = Sandbox.from_settings(context.settings)

    async def python(code: str) -> dict[str, Any]:
        if not code.strip():
            raise InvalidRequest("python: 'code' is empty; send a program to run", param="code")
        try:
            result = await sandbox.run(code)
        except SandboxError as exc:
            raise ToolError(f"python: {exc}") from None
        return {
            "stdout": result.stdout,
            "stderr": result.stderr,
            "exit_code": result.exit_code,
            "timed_out": result.timed_out,
            "truncated": result.truncated,
            "duration_ms": result.duration_ms,
            "isolation": str(result.isolation),
        }

    python.__doc__ = _DESCRIPTION.format(timeout=sandbox.timeout, memory_mb=sandbox.memory_mb)
    register(python)
