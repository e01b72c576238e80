"""Text from a results file (or any other input) made safe for a terminal: the one function every
command uses before such text reaches standard output or standard error.

A results file is input like any other: a message, a check id or a framework version in it may
hold terminal escape sequences (``ESC [ 2 J`` clears the screen, ``ESC ] 52`` writes the
clipboard), carriage returns and line breaks that forge the lines around them, or Unicode
direction overrides that make a line read backwards. :func:`printable` writes every such
character as its Python escape (``\\x1b``, ``\\r``, ``\\u202e``), so what a command prints is
what the file holds, visibly, on one line.
"""

from __future__ import annotations


def _escape(ch: str) -> str:
    return ch.encode("unicode_escape").decode("ascii")


def printable(text: object, *, newlines: bool = False) -> str:
    """``str(text)`` with every non-printable character (C0 and C1 controls, DEL, format
    characters such as the bidirectional overrides, line and paragraph separators) written as
    its Python escape; ``newlines``: keep ``\\n`` as a line break (multi-line output the program
    itself composed), else it is escaped too, so a value prints on one line. Tabs are escaped
    unless ``newlines`` is given."""
    s = str(text)
    if s.isprintable():
        return s
    keep = "\n\t" if newlines else ""
    return "".join(ch if ch.isprintable() or ch in keep else _escape(ch) for ch in s)
