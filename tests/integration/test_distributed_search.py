"""The parallel search on the real PostgreSQL: two processes share one Optuna study in the
platform's database, as two Celery workers on two machines would."""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import optuna
import pandas as pd
import pytest

from mlplatform.build import RawDelivery, build
from mlplatform.dbinit import ensure_database
from mlplatform.ingest import seed_file
from mlplatform.search import (
    WORKER,
    completed,
    optimize_share,
    pick_best,
    split_trials,
    storage,
)
from mlplatform.settings import Settings
from mlplatform.spec import SPEC
from mlplatform.training import candidate_of, cross_validate

SEED, FOLDS, TRIALS, WORKERS = 42, 3, 6, 2


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    raw = seed_file("cleveland", Settings()).read_bytes()
    built = build([RawDelivery("cleveland", "landing/cleveland/x", "-", raw)], SEED, 0.2)
    return built.splits["train"][[*SPEC.feature_names, SPEC.target]]


@pytest.fixture
def study(stack: Settings) -> Iterator[str]:
    ensure_database(stack, stack.OPTUNA_PG_DATABASE)
    name = f"test-{uuid.uuid4().hex[:8]}"
    optuna.create_study(storage=storage(stack), study_name=name, direction="maximize")
    yield name
    optuna.delete_study(study_name=name, storage=storage(stack))


def test_two_processes_share_one_study_in_postgres(
    stack: Settings, study: str, train: pd.DataFrame
) -> None:
    url = stack.pg_url(stack.OPTUNA_PG_DATABASE)
    shares = split_trials(TRIALS, WORKERS)
    # Separate processes (spawned, nothing inherited): they meet only in PostgreSQL.
    with ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("spawn")) as pool:
        runs = [
            pool.submit(optimize_share, study, url, train, worker, share, SEED, FOLDS)
            for worker, share in enumerate(shares)
        ]
        done = [r.result(timeout=600) for r in runs]
    assert done == shares

    trials = optuna.load_study(study_name=study, storage=url).trials
    finished = completed(trials)
    assert len(finished) == TRIALS
    assert {t.user_attrs[WORKER] for t in finished} == set(range(WORKERS))
    assert len({t.number for t in finished}) == TRIALS

    best = pick_best(trials)
    assert best.value == max(t.value for t in finished)
    # The refit gets the winner's exact configuration: scoring it again gives its score.
    candidate = candidate_of(best)
    again = cross_validate(candidate.family, candidate.params, train, SEED, FOLDS)
    assert again[f"cv_{SPEC.optimise_metric}"] == pytest.approx(best.value)

    # A retried worker that had finished joins the study and adds nothing.
    assert optimize_share(study, url, train, 0, shares[0], SEED, FOLDS) == shares[0]
    assert len(completed(optuna.load_study(study_name=study, storage=url).trials)) == TRIALS
