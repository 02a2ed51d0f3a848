"""Figures with budgets: printed with budget and ratio, appended as JSON lines.

    {"name": ..., "value": ..., "unit": ..., "budget": ..., "lower_is_better": true|false,
     "baseline": ... or null}

`make bench` appends to bench-results.jsonl in the repository root (BDC_BENCH_RESULTS); the smoke
run inside `make test` writes to a temporary file and checks the lines, nothing else.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

FULL = os.environ.get("BDC_BENCH") == "full"


def size(full: int, smoke: int) -> int:
    """`full` under `make bench`, `smoke` in the quick run inside `make test`."""
    return full if FULL else smoke


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    budget: float
    lower_is_better: bool
    baseline: float | None = None

    @property
    def ratio(self) -> float:
        """value / budget (lower is better) or budget / value: ≤ 1.0 is within budget."""
        if self.lower_is_better:
            return self.value / self.budget
        return self.budget / self.value if self.value else math.inf

    @property
    def within(self) -> bool:
        return self.ratio <= 1.0

    def line(self) -> str:
        sign = "≤" if self.lower_is_better else "≥"
        verdict = "ok" if self.within else "MISS"
        base = f"  baseline {self.baseline:,.2f} {self.unit}" if self.baseline is not None else ""
        return (
            f"[bench] {self.name}: {self.value:,.2f} {self.unit} (budget {sign} "
            f"{self.budget:,.2f}, ratio {self.ratio:.2f} {verdict}){base}"
        )


class Recorder:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.figures: list[Figure] = []

    def record(
        self,
        name: str,
        value: float,
        unit: str,
        budget: float,
        *,
        lower_is_better: bool = True,
        baseline: float | None = None,
    ) -> Figure:
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name}: measured {value!r}")
        figure = Figure(
            name,
            round(float(value), 3),
            unit,
            float(budget),
            lower_is_better,
            None if baseline is None else round(float(baseline), 3),
        )
        self.figures.append(figure)
        print(figure.line(), flush=True)
        if self.path is not None:
            with self.path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(asdict(figure)) + "\n")
        return figure


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 200 samples is the 198th smallest)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    return statistics.median(values)
