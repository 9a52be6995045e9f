"""Duplicate detection measured on the real NYC 311 corpus (tests/data/nyc311) by the evaluation command,
which runs the router's own planning (`plan_batch`): floors that catch a regression (issue 17)."""

from pathlib import Path

import pytest

from caseway_router.research.evaluate import (
    NYC_RULES,
    as_is_result,
    load_corpus,
    sigma_result,
    true_pairs,
)

CORPUS = Path(__file__).resolve().parents[1] / "data" / "nyc311" / "nyc311_2013-12-25.csv"


@pytest.fixture(scope="module")
def corpus():
    if not CORPUS.is_file():
        pytest.fail(f"the reference corpus is missing: {CORPUS} (see tests/data/nyc311/README.md)")
    requests = load_corpus(CORPUS)
    return requests, true_pairs(requests)


def test_the_corpus_is_the_one_the_issue_describes(corpus):
    requests, truth = corpus
    assert len(requests) == 2386
    assert len(truth) == 985


def test_as_is_the_detector_finds_the_repeats_at_one_address(corpus):
    requests, truth = corpus
    result = as_is_result(requests, truth, NYC_RULES, batch=10)
    assert result.detector.precision >= 0.945  # goal 0.95: measured 0.9499 (address-less requests joined)
    assert result.detector.recall >= 0.99
    assert result.detector.precision > result.distances.quality(250).precision + 0.3


@pytest.mark.parametrize("sigma", [5, 15, 35])
def test_at_every_gps_error_the_detector_stays_near_the_hindsight_oracle(corpus, sigma):
    # The detector is not told sigma. Measured gaps (5 seeds) are -0.07 to -0.045 in F1; the issue's goal
    # (a gap >= 0) is not met yet. A detector with a fixed 15 m error fell 0.24 behind at 35 m: this fails.
    requests, truth = corpus
    result = sigma_result(requests, truth, NYC_RULES, sigma_m=sigma, seeds=(1,), batch=10)
    assert result.detector.f1 >= result.oracle.f1 - 0.08
    assert result.detector.recall >= 0.65
