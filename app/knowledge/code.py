"""Source code read into sections, one per top-level definition where a pattern for the
language finds them (`def parse`, `class Chunker`, `func main`, `[tool.mypy]`), each under its
definition as a heading; the comments and decorators right above a definition go with it."""

from __future__ import annotations

import re

from app.knowledge.document import Section, lines_section

_PYTHON = r"(?:async\s+)?(?P<name>(?:def|class)\s+\w+)"
_JAVASCRIPT = (
    r"(?:export\s+(?:default\s+)?)?(?:declare\s+)?(?:abstract\s+)?(?:async\s+)?"
    r"(?P<name>(?:function\*?|class|interface|enum|type|namespace)\s+[\w$]+"
    r"|(?:const|let|var)\s+[\w$]+(?=\s*=\s*(?:async\s+)?(?:function\b|\()))"
)
_GO = r"(?P<name>func\s+(?:\([^)]*\)\s*)?\w+|type\s+\w+)"
_RUST = (
    r"(?:pub(?:\([^)]*\))?\s+)?(?:(?:async|const|unsafe)\s+)*"
    r"(?P<name>(?:fn|struct|enum|trait|mod|union)\s+\w+"
    r"|impl(?:<[^>]*>)?\s+[\w:]+(?:<[^>]*>)?(?:\s+for\s+[\w:]+)?)"
)
_JVM = (
    r"(?:(?:public|private|protected|internal|abstract|final|sealed|static|data|open|partial)\s+)*"
    r"(?P<name>(?:class|interface|enum|record|object|trait|struct|namespace|fun|func|function)"
    r"\s+\w+)"
)
_C = (
    r"(?:typedef\s+)?(?P<name>(?:struct|class|enum|union|namespace)\s+\w+)(?![^;]*;\s*$)"
    r"|(?!(?:return|else|if|for|while|switch|case|do|typedef)\b)[A-Za-z_][\w\s*&:<>,]*?"
    r"\b(?P<function>[A-Za-z_][\w:~]*)\s*\([^;]*$"
)
_RUBY = r"(?P<name>(?:def|class|module)\s+[\w.:?!]+)"
_SHELL = r"(?:function\s+)?(?P<name>[\w-]+)\s*\(\)"
_SQL = (
    r"(?i:create\s+(?:or\s+replace\s+)?(?:temp(?:orary)?\s+)?(?:unique\s+)?"
    r"(?P<name>(?:table|view|materialized\s+view|function|procedure|index|trigger|type|schema)"
    r"\s+(?:if\s+not\s+exists\s+)?[\w.\"`]+))"
)
_SECTIONS = r"\[(?P<name>[^\]\n]+)\]"
_YAML = r"(?P<name>[\w.-]+)(?=:\s*(?:#.*)?$)|[\w.\"'-]+:"

_OUTLINES = {
    **dict.fromkeys((".py", ".pyi"), _PYTHON),
    **dict.fromkeys((".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx", ".vue", ".svelte"), _JAVASCRIPT),
    ".go": _GO,
    ".rs": _RUST,
    **dict.fromkeys((".java", ".kt", ".kts", ".scala", ".cs", ".swift", ".php", ".dart"), _JVM),
    **dict.fromkeys((".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh"), _C),
    ".rb": _RUBY,
    **dict.fromkeys((".sh", ".bash", ".zsh"), _SHELL),
    ".sql": _SQL,
    **dict.fromkeys((".toml", ".ini", ".cfg"), _SECTIONS),
    **dict.fromkeys((".yaml", ".yml"), _YAML),
}
_PATTERNS = {extension: re.compile(f"^(?:{outline})") for extension, outline in _OUTLINES.items()}
_OTHERS = (
    ".lua", ".pl", ".r", ".jl", ".ex", ".exs", ".erl", ".hs", ".ml", ".clj", ".fish", ".ps1",
    ".bat", ".conf", ".xml", ".css", ".scss", ".less", ".proto", ".graphql", ".gql", ".tf",
    ".hcl", ".gradle", ".cmake", ".mk",
)  # fmt: skip
EXTENSIONS = frozenset((*_OUTLINES, *_OTHERS))
"""The extensions of source code files."""

_NOTHING = re.compile(r"(?!)")
_ATTACHED = re.compile(r"(?:@|#|//|/\*|\*|--|;)|\s+\*")


def sections(extension: str, text: str) -> list[Section]:
    """The sections of source `text` in a file with `extension`: code, with their lines."""
    lines = text.split("\n")
    starts: list[tuple[int, tuple[str, ...]]] = [(0, ())]
    pattern = _PATTERNS.get(extension, _NOTHING)
    for number, line in enumerate(lines):
        if match := pattern.match(line):
            start = number
            while start > starts[-1][0] and _ATTACHED.match(lines[start - 1]):
                start -= 1
            starts.append((start, _heading(match)))
    ends = [start for start, _ in starts[1:]] + [len(lines)]
    found = []
    for (start, heading_path), end in zip(starts, ends, strict=True):
        if section := lines_section(lines[start:end], start, heading_path, code=True):
            found.append(section)
    return found


def _heading(match: re.Match[str]) -> tuple[str, ...]:
    name = match["name"] or match.groupdict().get("function")
    return (" ".join(name.split()),) if name else ()
