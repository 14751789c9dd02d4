"""NATS header blocks (``NATS/1.0\\r\\nName: value\\r\\n...``) read as nats-py reads them.

Splitting headers was the logger's largest cost per frame. Headers as nats-py writes them
(one ``Name: value`` per line, nothing to strip) are read with a few calls
(:func:`parse_header_block`), and the values the logger wants from a layout seen before
with one regular expression (:class:`HeaderReader`). Anything else goes line by line
through :func:`parse_header_lines`, which gives exactly what nats-py's own parser gives.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import NamedTuple

_WHITESPACE = re.compile(rb"[\s\x1c-\x1f]")

PREAMBLE = "NATS/1.0\r\n"
_PREAMBLE_BYTES = PREAMBLE.encode()
_END = "\r\n\r\n"


def parse_header_lines(raw: bytes) -> dict[str, str]:
    """nats-py's ``Client._parse_header_lines``, same result (names with whitespace or
    non-ASCII bytes are skipped, values decoded with replacement), without a per-character
    generator."""
    out: dict[str, str] = {}
    for line in raw.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        name = name.strip()
        if not name.isascii() or _WHITESPACE.search(name):
            continue
        out[name.decode("ascii")] = value.strip().decode("utf-8", "replace")
    return out


def parse_header_block(block: bytes) -> dict[str, str] | None:
    """The headers of a message that has no status line, as nats-py gives them (None when
    there are none).

    Headers as nats-py writes them (``Name: value`` lines, values without surrounding
    whitespace) take a fast path: one decode and one split; anything else goes through
    :func:`parse_header_lines`.
    """
    text = block.decode("utf-8", "replace")
    if _plain_text(text):
        headers = _plain_headers(text[len(PREAMBLE) : -len(_END)].split("\r\n"))
        if headers is not None:
            return headers
    return parse_header_lines(block.removeprefix(_PREAMBLE_BYTES)) or None


def _plain_text(text: str) -> bool:
    """Whether a block is ``NATS/1.0``, lines, an empty line, and no value in it starts
    or ends with a space (nats-py strips them)."""
    return (
        text.startswith(PREAMBLE)
        and text.endswith(_END)
        and ":  " not in text
        and " \r\n" not in text
    )


def _plain_headers(lines: list[str]) -> dict[str, str] | None:
    """The headers, if every line is ``Name: value`` as nats-py reads it (else None)."""
    try:
        headers = dict([line.split(": ", 1) for line in lines])
    except ValueError:  # a line without ": "
        return None
    # nats-py skips names with whitespace or non-ASCII bytes and cuts at the first ":";
    # a value holding other whitespace (a tab, a lone CR) is not printable.
    if _plain_names("".join(headers)) and "".join(headers.values()).isprintable():
        return headers
    return None


def _plain_names(names: str) -> bool:
    """Whether these names (joined) are ones nats-py keeps as they are: ASCII, no
    whitespace or control characters, no ``:`` (it cuts a name at the first)."""
    return names.isascii() and names.isprintable() and " " not in names and ":" not in names


#: A value as a layout reads it: nothing nats-py would strip but a space (checked apart,
#: :func:`_plain_text`), no CR or LF.
_VALUE = r"([^\r\n\t\x0b\x0c]*)"
#: Appended to a layout's values: what it picks for a header it does not have.
_ABSENT = (None,)


class _Layout(NamedTuple):
    """The header names of a block, line by line; the pattern that reads their values at
    once, and which of them (or the None after them) are the ones asked for."""

    names: tuple[str, ...]
    pattern: re.Pattern[str]
    pick: Callable[[tuple[str | None, ...]], tuple[str | None, ...]]

    @classmethod
    def of(cls, names: tuple[str, ...], wanted: tuple[str, ...]) -> _Layout:
        lines = [f"{re.escape(name)}: {_VALUE}" for name in names]
        where = {name: i for i, name in enumerate(names)}
        absent = len(names)  # the None appended to the values
        indexes = [where.get(name, absent) for name in wanted]
        pick = itemgetter(*indexes) if len(indexes) > 1 else _one(indexes[0])
        return cls(names, re.compile("\r\n".join(lines)), pick)


def _one(index: int) -> Callable[[tuple[str | None, ...]], tuple[str | None, ...]]:
    return lambda values: (values[index],)  # itemgetter would give the value alone


class HeaderReader:
    """The values of some headers (``wanted``, in that order: None for one absent) from
    header blocks, as nats-py would read them; fast for the layouts seen before.

    A publisher writes the same header names in the same order for every message of a
    kind (the relay: a few layouts in all). A block read the long way that is plain (one
    ``Name: value`` per line, every name once) leaves its names as a layout; a later
    block with as many lines is matched against that layout's pattern, which reads every
    value at once (no split per line, no check of the names, no dict).
    """

    def __init__(self, wanted: Sequence[str], *, max_layouts: int = 64) -> None:
        self.wanted = tuple(wanted)
        self._max_layouts = max_layouts
        self._layouts: dict[int, list[_Layout]] = {}  # by number of lines
        self._count = 0

    def __call__(self, block: bytes) -> tuple[str | None, ...]:
        text = block.decode("utf-8", "replace")
        if not _plain_text(text):
            return self.pick(parse_header_lines(block.removeprefix(_PREAMBLE_BYTES)))
        end = len(text) - len(_END)
        lines = text.count("\r\n", 0, end)  # the preamble's line end and one per header
        for layout in self._layouts.get(lines, ()):
            if match := layout.pattern.fullmatch(text, len(PREAMBLE), end):
                return layout.pick(match.groups() + _ABSENT)
        headers = _plain_headers(text[len(PREAMBLE) : end].split("\r\n"))
        if headers is None:
            return self.pick(parse_header_lines(block.removeprefix(_PREAMBLE_BYTES)))
        if len(headers) == lines and self._count < self._max_layouts:
            # Every name once: the next blocks like it take the pattern.
            layout = _Layout.of(tuple(headers), self.wanted)
            self._layouts.setdefault(lines, []).append(layout)
            self._count += 1
        return self.pick(headers)

    def pick(self, headers: Mapping[str, str] | None) -> tuple[str | None, ...]:
        """The wanted values from headers read otherwise (e.g. by nats-py)."""
        if not headers:
            return (None,) * len(self.wanted)
        return tuple(map(headers.get, self.wanted))
