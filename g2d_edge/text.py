"""Text that reaches a terminal or a file name: identity-name rules and safe printing.

Identity names end up in gallery files, in log lines and on terminals. Control characters in them are refused
(`forbidden_character`): a NUL is dropped by NumPy's string arrays (so `'bob\\0'` would merge into `'bob'`), and
escape sequences, newlines or bidirectional overrides and marks would let a name rewrite what a terminal shows;
invisible characters (zero width space ...) would make two names list identically. Names are stored and looked up
in Unicode NFC (`normalised_name`), and a name with nothing visible in it (only spaces, fillers, marks) is refused.
`printable(text)` is the one way the CLI and error messages show text that came from outside (names, paths).
"""
from __future__ import annotations

import unicodedata
from typing import Optional, Tuple

#: Longest identity name accepted (characters).
MAX_NAME_LENGTH = 256

# Bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069): they reorder what follows them;
# and the bidirectional marks (U+200E LRM, U+200F RLM, U+061C ALM), invisible and able to reorder neighbours.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
# Invisible characters that only hide a difference between two names ('alice' and 'alice\u200b' would list
# identically): zero width space, word joiner and invisible operators, byte order mark, soft hyphen, Mongolian
# vowel separator, combining grapheme joiner. (Zero width (non-)joiners U+200C / U+200D stay allowed: Persian and
# Indic names and emoji sequences need them.)
INVISIBLE_CHARACTERS = _INVISIBLE = frozenset("\u200b\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u180e\u034f")
# Characters that draw nothing although their category says "letter" or "symbol": Hangul fillers, Braille blank.
_BLANKS = frozenset("\u3164\u115f\u1160\uffa0\u2800")
# Cc: C0/C1 controls, DEL; Cs: lone surrogates (cannot be encoded); Zl/Zp: line and paragraph separators.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})


def is_forbidden(char: str) -> bool:
    """True for a character that must not appear in a name or be printed raw: a control character, a lone
    surrogate, a line/paragraph separator, a bidirectional control or mark, or an invisible character that would
    hide a difference between two names (zero width space, BOM, soft hyphen ...)."""
    return char in _BIDI_CONTROLS or char in _INVISIBLE or unicodedata.category(char) in _FORBIDDEN_CATEGORIES


def is_visible(char: str) -> bool:
    """False for a character that draws nothing on its own: spaces, format characters, combining marks, and the
    fillers and blanks that Unicode calls letters or symbols (U+3164, U+2800 ...)."""
    return not (char.isspace() or char in _BLANKS or unicodedata.category(char) in ("Cf", "Mn", "Me", "Zs"))


def normalised_name(text: str) -> str:
    """A name in the one form the SDK stores and looks up: Unicode NFC (a folder named "José" written decomposed,
    as macOS does, is the same person as "José" typed), surrounding spaces removed."""
    return unicodedata.normalize("NFC", text).strip()


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
