"""Text that reaches a terminal or a file name: identity-name rules and safe printing.

Identity names end up in gallery files, in log lines and on terminals. Control characters in them are refused
(`forbidden_character`): a NUL is dropped by NumPy's string arrays (so `'bob\\0'` would merge into `'bob'`), and
escape sequences, newlines or bidirectional overrides would let a name rewrite what a terminal shows.
`printable(text)` is the one way the CLI and error messages show text that came from outside (names, paths).
"""
from __future__ import annotations

import unicodedata
from typing import Optional, Tuple

#: Longest identity name accepted (characters).
MAX_NAME_LENGTH = 256

# Bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069): they reorder what follows them.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Cc: C0/C1 controls, DEL; Cs: lone surrogates (cannot be encoded); Zl/Zp: line and paragraph separators.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})


def is_forbidden(char: str) -> bool:
    """True for a character that must not appear in a name or be printed raw: a control character, a lone
    surrogate, a line/paragraph separator or a bidirectional control."""
    return char in _BIDI_CONTROLS or unicodedata.category(char) in _FORBIDDEN_CATEGORIES


def forbidden_character(text: str) -> Optional[Tuple[int, str]]:
    """(position, character) of the first forbidden character in `text` (see `is_forbidden`), or None."""
    for i, char in enumerate(text):
        if is_forbidden(char):
            return i, char
    return None


def printable(text: object, limit: Optional[int] = None) -> str:
    """`str(text)` with every forbidden character written as an escape (`\\n`, `\\x1b`, `\\u202e`), so that it
    prints as one harmless line; cut to `limit` characters (with "...") when given."""
    out = []
    for char in str(text):
        if not is_forbidden(char):
            out.append(char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 0x100:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(f"\\u{ord(char):04x}")
    result = "".join(out)
    if limit is not None and len(result) > limit:
        result = result[: max(0, limit - 3)] + "..."
    return result


def quoted(text: object, limit: int = 80) -> str:
    """A name for an error message: `printable`, cut to `limit` characters, in single quotes."""
    return f"'{printable(text, limit)}'"
