"""Words: the one place where numbers and states are put into text for people to read.

Every surface (the command line, the magic, the panel, reports) draws what this module writes, so a
limit, a point or a recommendation reads the same everywhere.
"""

from __future__ import annotations

import unicodedata

__all__ = ["terminal_text"]


def terminal_text(text: str) -> str:
    """``text`` safe to print on a terminal: control and format characters shown as escapes.

    Error messages, labels and grid values come from users and workloads; an escape sequence in
    them would otherwise move the cursor, recolour or retitle the terminal. Newlines and tabs stay.
    """
    return "".join(
        char if char in "\n\t" or unicodedata.category(char) not in ("Cc", "Cf")
        else char.encode("unicode_escape").decode("ascii")
        for char in text
    )
