"""The ADF parser under hostile bytes: hypothesis (10,000 cases, derandomized for CI) and atheris
when it is installed. The only failure allowed is the typed AdfError, naming its problems."""

from __future__ import annotations

import time
from datetime import UTC, datetime

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


def test_atheris_if_installed() -> None:
    atheris = pytest.importorskip("atheris")
    began, runs = time.monotonic(), 0

    def one(data: bytes) -> None:
        nonlocal runs
        runs += 1
        _check(data, "atheris")

    for sample in SAMPLE_BODIES:
        one(sample)
    provider_runs = scaled(2000, 200000)
    for n in range(provider_runs):
        one(atheris.FuzzedDataProvider(n.to_bytes(8, "little") * 64).ConsumeBytes(512))
    figures("ADF fuzz (atheris)", runs=runs, seconds=round(time.monotonic() - began, 1))
