"""Depth- and size-bounded JSON and TOML decoding: the one way untrusted documents are read.

CPython's JSON scanner recurses in C once per nesting level and tomllib in Python, and the
chain stack (py-evm, py_ecc) raises the interpreter's recursion limit to 100,000 on import,
so a document of 100,000 nested brackets overflows the C stack and kills the process with
SIGSEGV before any RecursionError. Every peer message, receipt, spec and party config is
therefore scanned for its nesting depth *before* it is parsed, sized before it is read, and
the recursion limit is put back where Python keeps it once the chain stack is imported.
Bottom of the import graph: the standard library and :mod:`chronoseal.errors` only. A
refusal is a :class:`DocumentRefused` (a ``ValueError`` too, like the parsers' own errors),
which each caller maps to its own stable id.
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from typing import Any

from chronoseal.errors import ChronosealError

#: No document chronoseal reads nests deeper (a spec's policies nest 4, a request 3).
MAX_DEPTH = 32

#: The limit Python had before any chain library raised it; 1000 if one already had.
_INTERPRETER_LIMIT = sys.getrecursionlimit()
_SAFE_LIMIT = _INTERPRETER_LIMIT if _INTERPRETER_LIMIT <= 10_000 else 1000

# A JSON string (escapes included) or one bracket; strings are skipped so their brackets
# do not count. The string pattern is the unrolled loop, linear in the input.
_JSON_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.S)
# TOML: multi-line and single-line basic and literal strings, comments, brackets.
_TOML_TOKENS = re.compile(
    r'"""(?:[^"\\]|\\[\s\S]|"(?!""))*"{3,5}'
    r"|'''(?:[^']|'(?!''))*'{3,5}"
    r'|"[^"\\\n]*(?:\\.[^"\\\n]*)*"'
    r"|'[^'\n]*'"
    r"|#[^\n]*"
    r"|[\[\]{}]"
)

# A dotted key of more than MAX_DEPTH parts, which tomllib turns into as many nested tables
# at quadratic cost (a 100,000-part key exhausts memory).
_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"[^"\n]*"|'[^'\n]*')"""
_LONG_DOTTED_KEY = re.compile(_KEY_PART + r"(?:[ \t]*\.[ \t]*" + _KEY_PART + f"){{{MAX_DEPTH}}}")


class DocumentRefused(ChronosealError, ValueError):
    """A document too large, too deep or not text: refused before the parser sees it.

    Also a ``ValueError``, so that one ``except ValueError`` around a decode catches it with
    the parsers' own errors; callers re-raise it under their own id with :func:`detail`."""

    default_id = "chronoseal.document.refused"


def detail(exc: Exception) -> str:
    """What went wrong, without an id: a caller's own refusal carries its own id."""
    return exc.message if isinstance(exc, ChronosealError) else str(exc)


def restore_recursion_limit() -> None:
    """Undo the chain stack's ``sys.setrecursionlimit(100000)`` (py-evm, py_ecc), under
    which deep recursion in C overflows the stack instead of raising RecursionError."""
    if sys.getrecursionlimit() > _SAFE_LIMIT:
        sys.setrecursionlimit(_SAFE_LIMIT)


def _check_depth(text: str, tokens: re.Pattern[str], max_depth: int, what: str) -> None:
    if text.count("[") + text.count("{") <= max_depth:
        return
    depth = 0
    for match in tokens.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > max_depth:
                raise DocumentRefused(f"the {what} nests deeper than {max_depth} levels")
        elif token in ("]", "}"):
            depth -= 1


def _text(data: bytes | str, max_bytes: int, what: str) -> str:
    if len(data) > max_bytes:
        raise DocumentRefused(f"the {what} is larger than {max_bytes} bytes")
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentRefused(f"the {what} is not UTF-8 text") from exc


def _nested_too_deep(value: Any, max_depth: int) -> bool:
    """Depth of the decoded value, walked without recursion (TOML's dotted keys nest too)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > max_depth:
                return True
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
    return False


def loads_json(
    data: bytes | str, *, max_bytes: int, max_depth: int = MAX_DEPTH, what: str = "document"
) -> Any:
    """``json.loads`` that cannot be driven past ``max_bytes`` or ``max_depth``; invalid JSON
    still raises ``json.JSONDecodeError``."""
    text = _text(data, max_bytes, what)
    _check_depth(text, _JSON_TOKENS, max_depth, what)
    restore_recursion_limit()
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise DocumentRefused(f"the {what} nests too deep") from exc


def loads_toml(
    data: bytes | str, *, max_bytes: int, max_depth: int = MAX_DEPTH, what: str = "document"
) -> dict[str, Any]:
    """``tomllib.loads`` bounded the same way (dotted keys count towards the depth); invalid
    TOML still raises ``tomllib.TOMLDecodeError``."""
    text = _text(data, max_bytes, what)
    _check_depth(text, _TOML_TOKENS, max_depth, what)
    if _LONG_DOTTED_KEY.search(text):
        raise DocumentRefused(f"the {what} has a dotted key of more than {MAX_DEPTH} parts")
    restore_recursion_limit()
    try:
        doc = tomllib.loads(text)
    except RecursionError as exc:
        raise DocumentRefused(f"the {what} nests too deep") from exc
    if _nested_too_deep(doc, max_depth):
        raise DocumentRefused(f"the {what} nests deeper than {max_depth} levels")
    return doc
