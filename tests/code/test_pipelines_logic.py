"""Unit tests of the pipelines' pure logic: search space, split, CLI, DAGs."""

from __future__ import annotations

import optuna
import pandas as pd
import pytest

from mlplatform.build import frame_digest
from mlplatform.spec import SPEC
from mlplatform.training import MISSING_INDICATORS, suggest


def test_search_space_covers_the_required_families() -> None:
    assert {"logistic_regression", "svm", "random_forest", "gradient_boosting"} <= set(
        SPEC.search_space
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(40):
        trial = study.ask()
        family, params = suggest(trial)
        assert set(params) == {*SPEC.search_space[family], MISSING_INDICATORS}
        seen.add(family)
        study.tell(trial, 0.0)
    assert seen == set(SPEC.search_space)


def test_frame_digest_ignores_row_order() -> None:
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    assert frame_digest(df) == frame_digest(df.iloc[::-1])
    assert frame_digest(df) != frame_digest(df.assign(a=[1, 2, 4]))


def test_cli_registers_the_pipeline_commands() -> None:
    from mlplatform.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["deliver", "hungarian"]).source == "hungarian"
    assert parser.parse_args(["trigger", "train", "--n-trials", "3"]).n_trials == 3
    assert parser.parse_args(["lineage"]).alias == "champion"
    with pytest.raises(SystemExit):
        parser.parse_args(["trigger", "no_such_dag"])


def test_unknown_source_is_a_clear_error() -> None:
    from mlplatform.ingest import seed_file
    from mlplatform.settings import Settings

    with pytest.raises(ValueError, match="unknown source 'mars'"):
        seed_file("mars", Settings())


def test_retraining_listens_to_the_asset_the_etl_updates() -> None:
    from airflow.dag_processing.dagbag import BundleDagBag

    from mlplatform.settings import REPO_ROOT

    dags = REPO_ROOT / "airflow" / "dags"
    bag = BundleDagBag(dag_folder=str(dags), bundle_path=dags)
    etl, retrain = bag.dags["etl"], bag.dags["retrain"]
    outlets = {a.uri for t in etl.tasks for a in t.outlets}
    listened = {a.uri for a in retrain.timetable.asset_condition.objects}
    alarms = {a.uri for t in bag.dags["monitor"].tasks for a in t.outlets}
    assert len(outlets) == 1 and len(alarms) == 1 and listened == outlets | alarms
    for dag in (etl, bag.dags["train"], retrain):
        assert all(t.retries >= 1 for t in dag.tasks), dag.dag_id
