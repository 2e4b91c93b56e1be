"""Cut streaming LLM text into speakable pieces, the first one short.

Text arrives token by token. A piece is cut at a sentence end or a line break (bullets, headings),
the first piece already at a clause boundary (", " after a few words) so the first audio comes
early, long sentences at a clause or word boundary. A code fence is never cut in two: the
normaliser drops fences whole. Boundaries need the whitespace after them, so "3.5" and "1,000"
are not cut while their tokens are still arriving.
"""
from __future__ import annotations

import re

_SENTENCE = re.compile(r"[.!?…]+[\"'”’)\]*_`]*(?=\s)")
_CLAUSE = re.compile(r"[,;:—–]+[\"'”’)\]*_`]*(?=\s)")
_ABBREVIATION = re.compile(r"(?:^|\s)(?:mr|mrs|ms|dr|prof|st|vs|etc|e\.g|i\.e|[a-z])$", re.I)
_LIST_NUMBER = re.compile(r"(?:^|\n)\s*\d{1,3}$")
MAX_PIECE_CHARS = 600  # a run of text with no space at all (a hash, base64) is still cut


class Segmenter:
    def __init__(self, first_piece_words: int = 3, max_piece_words: int = 40):
        self.first_piece_words = first_piece_words
        self.max_piece_words = max_piece_words
        self._buf = ""
        self.pieces = 0

    @property
    def pending(self) -> str:
        return self._buf

    def push(self, text: str) -> list[str]:
        """Add a text delta; return the pieces that are now complete."""
        self._buf += text
        out: list[str] = []
        while (cut := self._find_cut()) is not None:
            piece, self._buf = self._buf[:cut], self._buf[cut:].lstrip()
            if piece.strip():
                out.append(piece.strip())
                self.pieces += 1
        return out

    def flush(self) -> list[str]:
        """Everything buffered, as one piece (a Flush or the end of the text)."""
        piece, self._buf = self._buf.strip(), ""
        if not piece:
            return []
        self.pieces += 1
        return [piece]

    def _find_cut(self) -> int | None:
        buf = self._buf
        limit = _fence_start(buf)  # no cut inside (or after the start of) an unclosed fence
        fences = _closed_fences(buf[:limit])
        first = self.pieces == 0
        candidates: list[int] = []
        for m in _SENTENCE.finditer(buf, 0, limit):
            if _inside(m.start(), fences) or self._not_a_sentence_end(buf, m.start()):
                continue
            candidates.append(m.end())
            break
        newline = _first_outside(buf, "\n", limit, fences)
        if newline is not None and buf[:newline].strip():
            candidates.append(newline)
        for m in _CLAUSE.finditer(buf, 0, limit):
            words = len(buf[:m.end()].split())
            needed = self.first_piece_words if first else self.max_piece_words // 2
            if words >= needed and not _inside(m.start(), fences):
                candidates.append(m.end())
                break
        if candidates:
            return min(candidates)
        return self._forced_cut(buf[:limit])

    def _forced_cut(self, buf: str) -> int | None:
        spaces = [m.start() for m in re.finditer(r"\s+", buf)]
        if len(spaces) >= self.max_piece_words:
            return spaces[self.max_piece_words - 1]
        if not spaces and len(buf) > MAX_PIECE_CHARS:
            return MAX_PIECE_CHARS
        return None

    @staticmethod
    def _not_a_sentence_end(buf: str, at: int) -> bool:
        before = buf[:at]
        return bool(_ABBREVIATION.search(before) or _LIST_NUMBER.search(before))


def _fence_start(buf: str) -> int:
    """Index where an unclosed ``` starts, or len(buf)."""
    positions = [m.start() for m in re.finditer("```", buf)]
    return positions[-1] if len(positions) % 2 else len(buf)


def _closed_fences(buf: str) -> list[tuple[int, int]]:
    positions = [m.start() for m in re.finditer("```", buf)]
    return [(positions[i], positions[i + 1] + 3) for i in range(0, len(positions) - 1, 2)]


def _inside(index: int, spans: list[tuple[int, int]]) -> bool:
    return any(start <= index < end for start, end in spans)


def _first_outside(buf: str, char: str, limit: int, spans: list[tuple[int, int]]) -> int | None:
    for i, c in enumerate(buf[:limit]):
        if c == char and not _inside(i, spans):
            return i
    return None
