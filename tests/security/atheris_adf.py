"""Coverage-guided fuzzing of the ADF parser with atheris (libFuzzer), run as its own process by
test_adf_fuzz.py: `python -m tests.security.atheris_adf -runs=N -seed=S CORPUS_DIR`.

The only exception allowed out of the parser is the typed AdfError; anything else crashes the
run, and libFuzzer prints the input that did it."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import atheris

with atheris.instrument_imports(include=["server.intake"]):
    from server.intake.adf import AdfError, parse_adf

RECEIVED = datetime(2026, 3, 10, 16, 0, tzinfo=UTC)


def one_input(data: bytes) -> None:
    try:
        result = parse_adf(data, received_at=RECEIVED, store_id="lakeside")
    except AdfError as error:
        if not error.problems:
            raise AssertionError("an AdfError must name its problems") from error
        return
    if not result.prospects:
        raise AssertionError("a document accepted without a prospect")


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
