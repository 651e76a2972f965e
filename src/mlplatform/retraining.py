"""Champion/challenger retraining.

The challenger is the champion's configuration refit on the current training split
(optionally the better, by CV, of that and a short new search). Champion and challenger
are scored on the SAME current test split; the challenger is promoted only if its
SPEC.optimise_metric beats the champion's by at least PROMOTION_MARGIN. Both scores and
the decision are logged to MLflow before the registry is touched, so a failure leaves
the registry as it was; promotion moves the `champion` alias in one call, so there is
always a champion, and the former one keeps `previous_champion`.
"""

from __future__ import annotations

import json
from typing import Any

from mlplatform.dataset import SPEC
from mlplatform.settings import Settings, get_settings

PROMOTE = "promote"
KEEP = "keep"
SKIPPED = "skipped"


def decide(champion_score: float, challenger_score: float, margin: float) -> str:
    """Promote only a real improvement of at least `margin`."""
    improvement = challenger_score - champion_score
    return PROMOTE if improvement > 0 and improvement >= margin else KEEP


def train_challenger(
    n_trials: int | None = None, settings: Settings | None = None
) -> dict[str, Any]:
    """Fit the challenger, score both models on the current test split, log it all."""
    import mlflow

    from mlplatform.etl import load_split, log_inputs, read_manifest
    from mlplatform.registry import get_champion, load_pipeline
    from mlplatform.training import (
        cross_validate,
        evaluate,
        log_trial,
        refit_and_log,
        search,
        start_parent_run,
    )

    s = settings or get_settings()
    n_trials = s.RETRAIN_TRIALS if n_trials is None else n_trials
    champion = get_champion(s)
    if champion is None:
        return {"decision": SKIPPED, "reason": "no champion yet: run the training DAG first"}
    manifest = read_manifest(s)
    if manifest is None:
        return {"decision": SKIPPED, "reason": "no dataset version is published yet"}
    metric = f"test_{SPEC.optimise_metric}"
    family = champion.tags.get("model_family")
    params = json.loads(champion.tags.get("params", "{}"))
    if family is None:  # a champion registered by hand carries no configuration to refit
        n_trials = n_trials or s.N_TRIALS
    frames = {name: load_split(name, manifest, s) for name in ("train", "test")}
    with start_parent_run("retraining", manifest, s, champion_version=str(champion.version)) as run:
        log_inputs(manifest, frames)
        if n_trials > 0:
            best = search(frames["train"], n_trials, s.RANDOM_SEED, s.CV_FOLDS, on_trial=log_trial)
            key = f"cv_{SPEC.optimise_metric}"
            if (
                family is None
                or best.cv[key]
                > cross_validate(family, params, frames["train"], s.RANDOM_SEED, s.CV_FOLDS)[key]
            ):
                family, params = best.family, best.params
        assert family is not None
        champion_model = load_pipeline(f"models:/{s.REGISTERED_MODEL_NAME}/{champion.version}")
        champion_scores = evaluate(champion_model, frames["test"])
        _, challenger_scores, uri = refit_and_log(family, params, manifest, s, prefix="challenger_")
        decision = decide(champion_scores[metric], challenger_scores[metric], s.PROMOTION_MARGIN)
        record = {
            "decision": decision,
            "metric": metric,
            "margin": s.PROMOTION_MARGIN,
            "dataset_version": manifest["dataset_version"],
            "champion_version": str(champion.version),
            "champion_dataset_version": champion.tags.get("dataset_version"),
            "champion": champion_scores,
            "challenger": challenger_scores,
            "family": family,
            "params": params,
        }
        mlflow.log_metrics({f"champion_{k}": v for k, v in champion_scores.items()})
        mlflow.log_params(
            {"decision": decision, "promotion_margin": s.PROMOTION_MARGIN, "n_trials": n_trials,
             "challenger_family": family, "champion_version": champion.version}
        )  # fmt: skip
        mlflow.set_tag("decision", decision)
        mlflow.log_dict(record, "decision.json")
    return {
        **record,
        "run_id": run.info.run_id,
        "model_uri": uri,
        "metrics": challenger_scores,
    }


def apply_decision(result: dict[str, Any], settings: Settings | None = None) -> dict[str, Any]:
    """Register the challenger (alias `challenger`); promote it if the decision says so."""
    from mlplatform.registry import CHALLENGER, configure, get_champion, promote
    from mlplatform.training import register_model

    s = settings or get_settings()
    if result["decision"] == SKIPPED:
        return result
    version = register_model(result, "retraining", s)
    client = configure(s)
    client.set_registered_model_alias(s.REGISTERED_MODEL_NAME, CHALLENGER, version)
    client.set_model_version_tag(s.REGISTERED_MODEL_NAME, version, "decision", result["decision"])
    champion = get_champion(s)
    current = str(champion.version) if champion is not None else None
    if current == version:  # a retry after the promotion went through
        return {**result, "challenger_version": version, "applied": True}
    # The champion moved since the challenge (another run): decide again another time.
    if current != result["champion_version"]:
        return {**result, "challenger_version": version, "applied": False}
    if result["decision"] == PROMOTE:
        promote(version, s)
    return {**result, "challenger_version": version, "applied": True}


def retrain(n_trials: int | None = None, settings: Settings | None = None) -> dict[str, Any]:
    s = settings or get_settings()
    return apply_decision(train_challenger(n_trials, s), s)
