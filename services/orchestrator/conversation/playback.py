"""What the candidate actually heard of an agent generation, from media's playback marks.

TTS tags each piece's first chunk with the text it speaks. Pieces played to the end count whole;
the piece playing when the candidate barged in counts in proportion to the samples played,
rounded down to whole words (speech rate within a piece is close enough to uniform for this).
Only this text enters the history, marked interrupted.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class _Piece:
    start: int  # first sample of the piece within the generation
    end: int    # one past its last sample so far
    text: str


@dataclass
class GenerationLog:
    generation_id: str
    pieces: list[_Piece] = field(default_factory=list)

    def add_chunk(self, offset_samples: int, n_samples: int, text: str = "") -> None:
        """Record a chunk sent down; `text` is set on the chunk that starts a piece."""
        if text or not self.pieces:
            self.pieces.append(_Piece(offset_samples, offset_samples + n_samples, text))
        else:
            self.pieces[-1].end = max(self.pieces[-1].end, offset_samples + n_samples)

    @property
    def total_samples(self) -> int:
        return self.pieces[-1].end if self.pieces else 0

    @property
    def text(self) -> str:
        return " ".join(p.text.strip() for p in self.pieces if p.text.strip())

    def heard_text(self, samples_played: int) -> str:
        heard: list[str] = []
        for piece in self.pieces:
            if samples_played >= piece.end:
                heard.append(piece.text.strip())
            elif samples_played > piece.start:
                words = piece.text.split()
                fraction = (samples_played - piece.start) / max(1, piece.end - piece.start)
                heard.append(" ".join(words[: int(len(words) * fraction)]))
                break
            else:
                break
        return " ".join(h for h in heard if h)
