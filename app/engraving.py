"""The lines the studio engraves: a page's measures grouped as they stand on the scan.

Each group is engraved as one line (see `score_view`), so the engraving follows the scan's
layout line by line.
"""

from __future__ import annotations

from omr_engine.notation.score import Measure


def group_systems(measures: list[Measure], fallback_size: int = 4) -> list[list[int]]:
    """Measure indices grouped into lines as they stand on the scan: a measure starts a new
    line when its box is left of the previous one or below it. Measures without a box (the
    ones a person inserted) stay on the line of the measure before them; a page without any
    boxes is cut into lines of `fallback_size` measures."""
    if not measures:
        return []
    if all(m.box is None for m in measures):
        return [
            list(range(i, min(i + fallback_size, len(measures))))
            for i in range(0, len(measures), fallback_size)
        ]
    systems: list[list[int]] = [[]]
    previous: tuple[float, float, float, float] | None = None
    for i, m in enumerate(measures):
        box = m.box
        if box is not None and previous is not None:
            height = max(previous[3] - previous[1], 1.0)
            new_line = box[0] < previous[0] - 0.25 * height or box[1] > previous[3] - 0.1 * height
            if new_line and systems[-1]:
                systems.append([])
        systems[-1].append(i)
        if box is not None:
            previous = box
    return systems
