"""A pasted log or stack trace in a message: the customer's own words are what it says.

A 400-line paste with one line of text is one ticket about that line. Read whole, the paste
outweighs the words (the embedding is mostly log) and its lines read as many reports ("FATAL
service unavailable", "every request failed" on each retry): the priority becomes a guess.
The local stage reads the customer's words and the paste's first line (what failed); the
escalation policy still reads the whole message, so a paste that sounds like an outage asks a
person to check (routing/escalation.py).
"""

from __future__ import annotations

import re

# A line a program wrote, not a person: a timestamp or a log level first, a stack frame, an
# exception's name, a traceback's header, or mostly punctuation (JSON, code, ASCII rules).
_MACHINE_LINE = re.compile(
    r"^(?:\[?\d{4}-\d{2}-\d{2}[T ]\d{1,2}:\d{2}"
    r"|\[?\d{1,2}:\d{2}:\d{2}"
    r"|\[?(?:ERROR|WARN|WARNING|INFO|DEBUG|TRACE|FATAL|CRITICAL|SEVERE|NOTICE|PANIC)\]?[\s:|]"
    r"|at [\w.$<>/\[\]-]+ ?\(.*\)$"
    r"|at [\w.$<>/-]+:\d+"
    r'|File "[^"]+", line \d+'
    r"|Traceback \(most recent call last\)"
    r"|(?:[\w$]+\.)*[\w$]*(?:Error|Exception|Panic)(?::|$)"
    r"|Caused by:"
    r"|\.\.\. \d+ more$"
    r"|#\d+ "
    r"|goroutine \d+"
    r")"
)
# A paste is this many program lines at least, and most of the message's characters.
MIN_PASTED_LINES = 5
_PASTE_SHARE = 0.5


def _is_machine(line: str) -> bool:
    stripped = line.strip()
    if not stripped:
        return False
    if _MACHINE_LINE.match(stripped):
        return True
    letters = sum(character.isalpha() or character.isspace() for character in stripped)
    return len(stripped) >= 3 and letters < len(stripped) / 2


def told_words(text: str) -> str:
    """The words the local stage reads: the text, or its human lines and the paste's first line.

    Lines inside a ``` fence are pasted whatever they look like.
    """
    lines = text.splitlines()
    if len(lines) < MIN_PASTED_LINES:
        return text
    machine: list[bool] = []
    fences: list[bool] = []
    fenced = False
    for line in lines:
        fence = line.strip().startswith("```")
        machine.append(fenced or fence or _is_machine(line))
        fences.append(fence)
        if fence:
            fenced = not fenced
    pasted = [
        line
        for line, is_machine, fence in zip(lines, machine, fences, strict=True)
        if is_machine and not fence
    ]
    pasted_chars = sum(len(line) for line in pasted)
    if len(pasted) < MIN_PASTED_LINES or pasted_chars < _PASTE_SHARE * len(text):
        return text
    # In the customer's order: their words, the paste's first line where the paste began.
    told: list[str] = []
    headline_told = False
    for line, is_machine, fence in zip(lines, machine, fences, strict=True):
        if not is_machine:
            if line.strip():
                told.append(line)
        elif not fence and not headline_told and line.strip():
            told.append(line.strip())
            headline_told = True
    return "\n".join(told).strip() or text
