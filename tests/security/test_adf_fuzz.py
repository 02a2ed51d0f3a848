"""The ADF parser under hostile bytes: hypothesis (10,000 cases, derandomized for CI) and atheris
when it is installed. The only failure allowed is the typed AdfError, naming its problems."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.intake.adf import AdfError, parse_adf
from tests.reliability.support import figures, scaled
from tests.server.intake.test_adf import SAMPLE_BODIES, SPICE, mutated_samples

RECEIVED = datetime(2026, 3, 10, 16, 0, tzinfo=UTC)
CASES_EACH = scaled(5000, 50000)  # three strategies: 15,000 cases in `make test`
tried: dict[str, int] = {}


def _check(body: bytes, strategy: str) -> None:
    tried[strategy] = tried.get(strategy, 0) + 1
    error: AdfError | None = None
    try:
        result = parse_adf(body, received_at=RECEIVED, store_id="lakeside")
    except AdfError as caught:
        error = caught
    if error is not None:
        assert error.problems and str(error).startswith("ADF document rejected: ")
        return
    assert result.prospects and all(p.lead.reachable for p in result.prospects)


_SETTINGS = settings(
    max_examples=CASES_EACH,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.slow
@pytest.mark.timeout(scaled(120, 1800))
@_SETTINGS
@given(st.binary(max_size=2000))
def test_random_bytes(body: bytes) -> None:
    _check(body, "bytes")


@pytest.mark.slow
@pytest.mark.timeout(scaled(120, 1800))
@_SETTINGS
@given(mutated_samples())
def test_mutated_real_documents(body: bytes) -> None:
    _check(body, "mutated")


@st.composite
def spliced(draw: st.DrawFn) -> bytes:
    """Real documents with hostile fragments spliced in at element boundaries."""
    body = draw(st.sampled_from(SAMPLE_BODIES))
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), min_size=1, max_size=5)))
    out, last = b"", 0
    for cut in cuts:
        out += body[last:cut] + draw(st.sampled_from(SPICE))
        last = cut
    return out + body[last:]


@pytest.mark.slow
@pytest.mark.timeout(scaled(120, 1800))
@_SETTINGS
@given(spliced())
def test_spliced_hostile_fragments(body: bytes) -> None:
    _check(body, "spliced")


def test_zz_figures() -> None:
    """Runs after the three above (file order): how many inputs were tried."""
    figures("ADF fuzz (hypothesis)", **tried, total=sum(tried.values()))


@pytest.mark.slow
@pytest.mark.timeout(scaled(180, 3600))
def test_atheris_coverage_guided(tmp_path: Path) -> None:
    """libFuzzer through atheris, seeded with the real sample documents, in its own process."""
    pytest.importorskip("atheris")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for number, sample in enumerate(SAMPLE_BODIES):
        (corpus / f"sample-{number}.xml").write_bytes(sample)
    runs = scaled(20000, 2000000)
    began = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.security.atheris_adf",
            f"-runs={runs}",
            "-seed=1",
            "-max_len=4096",
            f"-max_total_time={scaled(120, 3000)}",
            str(corpus),
        ],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=False,
    )
    log = done.stderr[-4000:]
    assert done.returncode == 0, log
    executed = re.findall(r"Done (\d+) runs", done.stderr)
    coverage = re.findall(r"cov: (\d+)", done.stderr)
    assert executed, log
    figures(
        "ADF fuzz (atheris, coverage-guided)",
        runs=int(executed[-1]),
        coverage_edges=int(coverage[-1]) if coverage else 0,
        seconds=round(time.monotonic() - began, 1),
    )
