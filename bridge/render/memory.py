"""What a render holds in memory at its peak, estimated before it starts, and the limit it must keep.

A render that would not fit is refused before anything is generated, with a message that gives the
estimate and the limit, rather than pushing the machine into swap (or the kernel's OOM killer) an
hour into a batch. The estimate is an upper bound fitted to measured peaks (``wavestack bench
--reliability`` measures them; README, Reliability): a fixed part, plus per second of audio and row
the stem's float copies at the output rate, the model's samples and sequences, and each level's
conditioning features. The limit is ``--memory-limit GB`` (``WAVESTACK_MEMORY_LIMIT``, inherited by
the processes a render starts), by default half of this machine's memory.
"""

from __future__ import annotations

import os
from typing import Any

ENV = "WAVESTACK_MEMORY_LIMIT"  # gigabytes; what --memory-limit sets
GB = 1e9
FIXED = 200 * 2**20  # what a render holds whatever its length (measured 76-140 MiB; the allocator varies)
OUTPUT_COPIES = 4  # float32 copies of a stem at the output rate: resampled, effects, gain, written
MODEL_BYTES = 32  # per sample at the model's rate: sequences (int64), audio, their copies
STEM_CHANNELS = 2  # an effects chain may make a mono stem stereo


def render_bytes(config: dict[str, Any], seconds: float, output_rate: int, rows: int = 1) -> int:
    """Peak memory of generating ``rows`` × ``seconds`` of audio with a model of stack ``config``
    (a bundle manifest's), delivered at ``output_rate``."""
    rate = config["sample_rate"]
    per_second = OUTPUT_COPIES * 4 * output_rate + MODEL_BYTES * rate
    hop = 1
    for level in config["levels"]:
        for stride in level["strides"]:
            hop *= stride
        per_second += 4 * level["cond_channels"] * rate / hop
    return int(FIXED + rows * seconds * per_second)


def held_stem_bytes(seconds: float, rate: int) -> int:
    """A finished stem kept in memory (for a mix): float32, up to ``STEM_CHANNELS`` channels."""
    return int(4 * STEM_CHANNELS * seconds * rate)


def limit() -> int:
    """The limit in bytes: ``WAVESTACK_MEMORY_LIMIT`` gigabytes, else half this machine's memory."""
    given = os.environ.get(ENV)
    if given:
        return int(float(given) * GB)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):  # a system that does not say: 8 GB
        return int(8 * GB)


def set_limit(gigabytes: float) -> None:
    """Set the limit for this process and every process it starts (what ``--memory-limit`` does)."""
    if not gigabytes > 0:
        raise ValueError(f"--memory-limit must be a number of gigabytes > 0, got {gigabytes:g}")
    os.environ[ENV] = repr(float(gigabytes))


def check(what: str, need: int) -> None:
    """Refuse ``what`` (ValueError) if it would need more than the limit."""
    if need > (allowed := limit()):
        raise ValueError(f"{what} would need about {need / GB:.1f} GB of memory, over the limit of "
                         f"{allowed / GB:.1f} GB: make it shorter, or raise the limit "
                         "(--memory-limit GB; by default half this machine's memory)")


def rows_within(config: dict[str, Any], seconds: float, output_rate: int) -> int:
    """How many rows of ``seconds`` one batched pass may hold within the limit (at least 1)."""
    per_row = render_bytes(config, seconds, output_rate) - FIXED
    return max(1, int((limit() - FIXED) // max(per_row, 1)))
