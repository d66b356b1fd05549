"""A tqdm progress bar fed with fractions done (what the engine's progress callback reports)."""

from __future__ import annotations

from types import TracebackType

from tqdm import tqdm


class ProgressBar:
    """``with ProgressBar("generate") as bar: stack.sample(..., progress=bar.update)``."""

    def __init__(self, label: str, *, disable: bool = False, resolution: int = 1000) -> None:
        self.resolution = resolution
        self._bar = tqdm(total=resolution, desc=label, unit="‰", disable=disable,
                         bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")

    def update(self, fraction: float) -> None:
        """Move the bar to ``fraction`` done (never backwards)."""
        target = min(self.resolution, max(0, round(fraction * self.resolution)))
        if target > self._bar.n:
            self._bar.update(target - self._bar.n)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._bar.close()
