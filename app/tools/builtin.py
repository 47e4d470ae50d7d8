"""The built-in tools, registered through the same plugin hook as any installed tool package."""

from __future__ import annotations

from app.tools import calculator, clock, fetch, python, system_info, weather, web_search, wikipedia
from app.tools.context import Register, ToolContext


def register_tools(register: Register, context: ToolContext) -> None:
    for module in (calculator, python, web_search, wikipedia, fetch, weather, clock, system_info):
        module.register_tools(register, context)
