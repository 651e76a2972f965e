"""The search's pure parts (no services): the single-worker study is deterministic, the trials
are split over the workers, and the best trial is picked the same way whoever finished first.
The shared PostgreSQL study runs in tests/integration/test_distributed_search.py."""

from __future__ import annotations

from typing import Any

import optuna
import pandas as pd
import pytest

from mlplatform.errors import ConfigurationError
from mlplatform.search import WORKER, pick_best, split_trials, worker_sampler
from mlplatform.spec import SPEC
from mlplatform.training import CANDIDATE, candidate_of, search

SEED = 42


@pytest.mark.parametrize(
    ("n_trials", "workers", "expected"),
    [
        (20, 1, [20]),
        (40, 2, [20, 20]),
        (20, 3, [7, 7, 6]),
        (11, 4, [3, 3, 3, 2]),
        (2, 5, [1, 1]),  # no worker without a trial
    ],
)
def test_trials_are_split_over_the_workers(
    n_trials: int, workers: int, expected: list[int]
) -> None:
    shares = split_trials(n_trials, workers)
    assert shares == expected
    assert sum(shares) == n_trials
    assert max(shares) - min(shares) <= 1


@pytest.mark.parametrize(("n_trials", "workers"), [(0, 2), (10, 0), (-1, 1)])
def test_a_search_without_trials_or_workers_is_refused(n_trials: int, workers: int) -> None:
    with pytest.raises(ConfigurationError, match="n_trials >= 1 and search_workers >= 1"):
        split_trials(n_trials, workers)


def test_one_worker_gives_the_same_trials_and_best_twice(cleveland: pd.DataFrame) -> None:
    """K = 1 is today's in-process, seeded study: two runs log the same trials and the same
    best configuration."""
    runs: list[tuple[list[Any], Any]] = []
    for _ in range(2):
        trials: list[Any] = []
        best = search(cleveland, 6, SEED, 3, lambda *t, log=trials: log.append(t))
        runs.append((trials, best))
    assert len(runs[0][0]) == 6
    assert runs[0] == runs[1]
    assert runs[0][1].cv[f"cv_{SPEC.optimise_metric}"] == max(
        cv[f"cv_{SPEC.optimise_metric}"] for *_, cv in runs[0][0]
    )


def _study(values: list[float | None]) -> optuna.Study:
    """Trials with these scores (None: a failed trial), each with a candidate attribute."""
    study = optuna.create_study(direction="maximize")
    dist = optuna.distributions.FloatDistribution(0, 1)
    for i, value in enumerate(values):
        study.add_trial(
            optuna.trial.create_trial(
                params={"x": i / 10},
                distributions={"x": dist},
                value=value,
                state=optuna.trial.TrialState.COMPLETE
                if value is not None
                else optuna.trial.TrialState.FAIL,
                user_attrs={
                    WORKER: i % 2,
                    CANDIDATE: {"family": "svm", "params": {"C": i}, "cv": {"cv_f1": value}},
                },
            )
        )
    return study


def test_the_best_trial_is_the_highest_score_and_the_earliest_on_a_tie() -> None:
    study = _study([0.5, None, 0.8, 0.7, 0.8])
    best = pick_best(study.trials)
    assert best.number == 2
    assert candidate_of(best).params == {"C": 2}
    # Whichever worker's trials the storage lists first, the pick is the same.
    assert pick_best(list(reversed(study.trials))).number == 2


def test_a_study_without_a_completed_trial_fails_loudly() -> None:
    with pytest.raises(RuntimeError, match="no completed trial"):
        pick_best(_study([None, None]).trials)


def test_each_worker_samples_its_own_stream() -> None:
    def first_draws(worker: int) -> list[float]:
        study = optuna.create_study(sampler=worker_sampler(SEED, worker))
        return [study.ask().suggest_float("x", 0, 1) for _ in range(3)]

    assert first_draws(0) == first_draws(0)  # seeded
    assert first_draws(0) != first_draws(1)  # not the same trials twice
