"""Duplicate detection measured on the real NYC 311 corpus (tests/data/nyc311), as the evaluation command
does: these are floors that catch a regression, not the goal (see the router issue's note)."""

from pathlib import Path

import pytest

from caseway_router.evaluate import NYC_RULES, as_app_reports, evaluate, load_corpus, true_pairs

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


def test_the_detector_beats_fixmystreet_and_distance_alone_as_is_and_with_gps_noise(corpus):
    requests, truth = corpus
    as_is = evaluate(requests, truth, NYC_RULES)
    noisy = evaluate(as_app_reports(requests, sigma_m=15, seed=7), truth, NYC_RULES)
    # The issue's measured distance-only baselines for the noisy corpus, reproduced.
    assert noisy.sweep[250].precision == pytest.approx(0.39, abs=0.01)
    assert noisy.sweep[50].precision == pytest.approx(0.83, abs=0.01)
    for result in (as_is, noisy):
        assert result.detector.precision > result.fixmystreet.precision + 0.3
        assert result.detector.f1 >= result.best_distance.f1
    assert as_is.detector.precision >= 0.95
    assert as_is.detector.recall >= 0.99
    assert noisy.detector.precision >= 0.83
    assert noisy.detector.recall >= 0.93
