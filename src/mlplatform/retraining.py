"""Champion/challenger retraining.

The challenger is the champion's configuration refit on the current training split
(optionally the better, by CV on the same folds, of that and a short new search), with its
calibration and threshold chosen on out-of-fold predictions. The decision is the promotion
gate (mlplatform.evaluation.promotion_gate), and it is fair: both models give their own
labels on the SAME current test rows, which neither has seen, and the search's best-of-N
CV score never enters it. The challenger is promoted only when the paired-bootstrap
interval of its improvement lies above 0 and no sizeable hospital gets worse. The gate
(intervals, McNemar, per-source deltas, the rule) is logged to MLflow and `decision.json`
before the registry changes, so a failure leaves the registry as it was; promotion moves
the `champion` alias in one call, so there is always a champion, and the former one keeps
`previous_champion`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mlplatform.dataset import DatasetSpec
from mlplatform.evaluation import KEEP, PROMOTE
from mlplatform.records import Record
from mlplatform.settings import Settings
from mlplatform.spec import SPEC
from mlplatform.store import DataStore
from mlplatform.training import TrainedModel

SKIPPED = "skipped"
__all__ = ["KEEP", "PROMOTE", "SKIPPED", "Applied", "Challenge", "apply_decision", "retrain"]


@dataclass(frozen=True)
class Challenge(Record):
    """The record of one champion/challenger comparison (`decision.json`)."""

    decision: str
    reason: str = ""
    metric: str = ""
    dataset_version: str = ""
    champion_version: str = ""
    champion_dataset_version: str | None = None
    champion: dict[str, float] = field(default_factory=dict)
    challenger: dict[str, float] = field(default_factory=dict)
    family: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    run_id: str = ""
    model_uri: str = ""
    # What started it: the Asset events (a new dataset version, a degradation alarm with its
    # figures), empty when run on demand.
    trigger: dict[str, Any] = field(default_factory=dict)
    gate: dict[str, Any] = field(default_factory=dict)  # evaluation.GateResult.to_dict()
    threshold: float = 0.5
    calibration: str = "none"
    threshold_policy: str = ""
    by_source: list[dict[str, Any]] = field(default_factory=list)  # challenger's, on test

    def challenger_model(self) -> TrainedModel:
        return TrainedModel(
            self.run_id, self.dataset_version, self.family, self.params, self.challenger,
            self.model_uri, self.threshold, self.calibration, self.threshold_policy,
            self.by_source,
        )  # fmt: skip


@dataclass(frozen=True)
class Applied:
    """What `apply_decision` did: the challenger's version, and whether the decision held."""

    challenge: Challenge
    challenger_version: str | None
    applied: bool

    def to_dict(self) -> dict[str, Any]:
        return {**self.challenge.to_dict(), "challenger_version": self.challenger_version,
                "applied": self.applied}  # fmt: skip


def train_challenger(
    n_trials: int | None,
    store: DataStore,
    settings: Settings,
    spec: DatasetSpec = SPEC,
    trigger: dict[str, Any] | None = None,
) -> Challenge:
    """Fit the challenger, score both models on the current test split, log it all."""
    import mlflow

    from mlplatform.evaluation import Predictions, promotion_gate
    from mlplatform.registry import get_champion, load_pipeline, model_uri
    from mlplatform.tracking import log_inputs, log_trial, start_parent_run
    from mlplatform.training import (
        assess,
        card_context,
        cross_validate,
        refit_and_log,
        search,
        sources_of,
        split_xy,
    )

    n_trials = settings.RETRAIN_TRIALS if n_trials is None else n_trials
    champion = get_champion(settings)
    if champion is None:
        return Challenge(SKIPPED, "no champion yet: run the training DAG first")
    metadata = store.read_manifest()
    if metadata is None:
        return Challenge(SKIPPED, "no dataset version is published yet")
    metric = f"test_{spec.optimise_metric}"
    family = champion.tags.get("model_family")
    params = json.loads(champion.tags.get("params", "{}"))
    if family is None:  # a champion registered by hand carries no configuration to refit
        n_trials = n_trials or settings.N_TRIALS
    frames = store.load_splits(metadata, spec, with_ids=True)
    seed, folds = settings.RANDOM_SEED, settings.CV_FOLDS
    with start_parent_run(
        "retraining", metadata, settings, champion_version=str(champion.version)
    ) as run:
        log_inputs(metadata, frames, spec)
        if n_trials > 0:
            # Only picks the challenger's configuration; the decision below is on test rows.
            best = search(frames["train"], n_trials, seed, folds, log_trial, spec)
            key = f"cv_{spec.optimise_metric}"
            if (
                family is None
                or best.cv[key]
                > cross_validate(family, params, frames["train"], seed, folds, spec)[key]
            ):
                family, params = best.family, best.params
        assert family is not None
        champion_model = load_pipeline(
            model_uri(settings.REGISTERED_MODEL_NAME, version=champion.version)
        )
        x_test, y_test = split_xy(frames["test"], spec)
        sources = sources_of(frames["test"])
        before = Predictions.of(champion_model, x_test)
        champion_scores = assess(y_test, before.labels, before.proba, sources, seed, spec)
        challenger = refit_and_log(
            family, params, frames, settings, spec, prefix="challenger_",
            card=card_context(metadata),
        )  # fmt: skip
        gate = promotion_gate(
            y_test, before, challenger.test, sources, spec.optimise_metric,
            settings.PROMOTION_CONFIDENCE, settings.PROMOTION_RESAMPLES, seed,
            settings.PROMOTION_MIN_SOURCE_ROWS, settings.PROMOTION_MAX_SOURCE_DROP,
        )  # fmt: skip
        challenge = Challenge(
            decision=gate.decision,
            reason="; ".join(gate.reasons),
            metric=metric,
            dataset_version=metadata.dataset_version,
            champion_version=str(champion.version),
            champion_dataset_version=champion.tags.get("dataset_version"),
            champion=champion_scores.metrics(),
            challenger=challenger.metrics,
            family=family,
            params=params,
            run_id=run.info.run_id,
            model_uri=challenger.uri,
            trigger=trigger or {},
            gate=gate.to_dict(),
            threshold=challenger.model.threshold,
            calibration=challenger.model.calibration.method,
            threshold_policy=challenger.model.policy,
            by_source=challenger.by_source,
        )
        mlflow.log_metrics(
            {
                **{f"champion_{k}": v for k, v in champion_scores.metrics().items()},
                **gate_metrics(gate),
            }
        )
        mlflow.log_dict(champion_scores.to_dict(), "evaluation/champion_evaluation.json")
        mlflow.log_params(
            {"decision": gate.decision, "promotion_rule": gate.rule[:500],
             "n_trials": n_trials, "challenger_family": family,
             "champion_version": champion.version}
        )  # fmt: skip
        mlflow.set_tag("decision", gate.decision)
        mlflow.log_dict(challenge.to_dict(), "decision.json")
    return challenge


def gate_metrics(gate: Any) -> dict[str, float]:
    """The gate's figures as MLflow metrics (the demo prints them)."""
    out = {
        "gate_improvement": gate.improvement.estimate,
        "gate_improvement_low": gate.improvement.low,
        "gate_improvement_high": gate.improvement.high,
        "gate_confidence": gate.improvement.confidence,
        "mcnemar_b": float(gate.mcnemar.b),
        "mcnemar_c": float(gate.mcnemar.c),
        "mcnemar_p_value": gate.mcnemar.p_value,
    }
    for s in gate.sources:
        out[f"gate_improvement__{s.source}"] = s.improvement.estimate
    return {k: float(v) for k, v in out.items() if v == v}  # NaN: undefined, not logged


def apply_decision(challenge: Challenge, settings: Settings) -> Applied:
    """Register the challenger (alias `challenger`); promote it if the decision says so."""
    from mlplatform.registry import CHALLENGER, configure, get_champion, promote, set_alias
    from mlplatform.training import register_model

    if challenge.decision == SKIPPED:
        return Applied(challenge, None, False)
    version = register_model(challenge.challenger_model(), "retraining", settings)
    set_alias(CHALLENGER, version, settings)
    configure(settings).set_model_version_tag(
        settings.REGISTERED_MODEL_NAME, version, "decision", challenge.decision
    )
    champion = get_champion(settings)
    current = str(champion.version) if champion is not None else None
    if current == version:  # a retry after the promotion went through
        return Applied(challenge, version, True)
    # The champion moved since the challenge (another run): decide again another time.
    if current != challenge.champion_version:
        return Applied(challenge, version, False)
    if challenge.decision == PROMOTE:
        promote(version, settings)
    return Applied(challenge, version, True)


def retrain(n_trials: int | None, store: DataStore, settings: Settings) -> Applied:
    return apply_decision(train_challenger(n_trials, store, settings), settings)
