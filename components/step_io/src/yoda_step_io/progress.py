"""Progress as log lines: one line every few percent with throughput and ETA, never a redrawn bar.

A step's log ends up in files and in Vertex AI's log viewer, where a progress bar that redraws
itself becomes hundreds of lines. :class:`ProgressLog` writes a line whenever another ``every``
share of the work is done (and at the end).
"""

from __future__ import annotations

import logging
import sys
import time


def interactive() -> bool:
    """Is a person watching a terminal (rather than a log file or a pipeline's log)?"""
    return sys.stderr.isatty()


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, seconds = divmod(round(seconds), 60)
    return (
        f"{minutes} min {seconds:02d} s"
        if minutes < 60
        else f"{minutes // 60} h {minutes % 60:02d} min"
    )


class ProgressLog:
    """Log ``label: done/total (pct) rate unit/s, ETA …`` every ``every`` of ``total``.

    Args:
        label: what is being done, e.g. ``"generating"``.
        total: how many units in all (> 0).
        unit: what a unit is, e.g. ``"samples"``.
        every: the share of ``total`` between two lines (0.05: every 5 %).
        done: units already done before this run (a resumed training), left out of the rate.
    """

    def __init__(
        self,
        logger: logging.Logger,
        label: str,
        total: int,
        unit: str,
        *,
        every: float = 0.05,
        done: int = 0,
    ) -> None:
        self.logger, self.label, self.total, self.unit = logger, label, max(total, 1), unit
        self.every, self.initial = every, done
        self.start = time.perf_counter()
        self._next_share = every * (1 + int(done / self.total / every))

    def rate(self, done: int) -> float:
        """Units per second since this log began."""
        elapsed = time.perf_counter() - self.start
        return (done - self.initial) / elapsed if elapsed > 0 else 0.0

    def update(self, done: int, detail: str = "") -> bool:
        """Record that ``done`` units are finished; log a line if a step of ``every`` was crossed.

        Returns:
            Whether a line was logged.
        """
        share = done / self.total
        if share < self._next_share - 1e-9 and done < self.total:
            return False
        while self._next_share <= share + 1e-9:
            self._next_share += self.every
        elapsed = time.perf_counter() - self.start
        rate = self.rate(done)
        eta = (self.total - done) / rate if rate > 0 else 0.0
        tail = f", ETA {_duration(eta)}" if done < self.total else f", {_duration(elapsed)} in all"
        extra = f"; {detail}" if detail else ""
        self.logger.info(
            "%s: %d/%d (%.0f%%) %.1f %s/s%s%s",
            self.label, done, self.total, 100 * share, rate, self.unit, tail, extra,
        )  # fmt: skip
        return True
