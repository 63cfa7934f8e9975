"""A tiny progress line for long commands: count, rate, ETA. No dependencies.

Draws on a terminal only: when the stream is not a TTY (a pipe, a file, CI), it writes
nothing at all, so scripted use and ``--json`` output stay clean.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """``with Progress(total, "replay") as bar: bar.update(n)``; redraws at most ``hz`` times a second."""

    def __init__(self, total: int | None, label: str = "", stream: TextIO | None = None, enabled: bool | None = None,
                 unit: str = "ev", hz: float = 8.0, width: int = 24):
        self.total = total
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.unit = unit
        self.interval = 1.0 / hz
        self.width = width
        self.count = 0
        self.started = time.monotonic()
        self._last_draw = 0.0
        self._drawn = 0

    def update(self, n: int = 1) -> None:
        self.count += n
        if self.enabled:
            now = time.monotonic()
            if now - self._last_draw >= self.interval:
                self._last_draw = now
                self._draw(now)

    def render(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        elapsed = max(now - self.started, 1e-9)
        rate = self.count / elapsed
        parts = [self.label] if self.label else []
        if self.total:
            done = min(1.0, self.count / self.total)
            filled = int(done * self.width)
            parts.append("[" + "#" * filled + "-" * (self.width - filled) + "]")
            parts.append(f"{self.count:,}/{self.total:,} {done:5.1%}")
        else:
            parts.append(f"{self.count:,}")
        parts.append(f"{rate:,.0f} {self.unit}/s")
        if self.total and rate > 0 and self.count < self.total:
            parts.append(f"ETA {_clock((self.total - self.count) / rate)}")
        else:
            parts.append(f"{_clock(elapsed)}")
        return " ".join(parts)

    def _draw(self, now: float) -> None:
        text = self.render(now)
        pad = max(0, self._drawn - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._drawn = len(text)

    def close(self) -> None:
        if self.enabled and self._drawn:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = 0

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
