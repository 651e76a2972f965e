"""Champion/challenger retraining.

The challenger is the champion's configuration refit on the current training split
(optionally the better, by CV, of that and a short new search). Champion and challenger
are scored on the SAME current test split; the challenger is promoted only if its
optimised metric beats the champion's by at least PROMOTION_MARGIN. Both scores and
the decision are logged to MLflow before the registry changes, so a failure leaves
the registry as it was; promotion moves the `champion` alias in one call, so there is
always a champion, and the former one keeps `previous_champion`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mlplatform.dataset import DatasetSpec
from mlplatform.records import Record
from mlplatform.settings import Settings
from mlplatform.spec import SPEC
from mlplatform.store import DataStore
from mlplatform.training import TrainedModel

PROMOTE = "promote"
KEEP = "keep"
SKIPPED = "skipped"


def decide(champion_score: float, challenger_score: float, margin: float) -> str:
    """Promote only a real improvement of at least `margin`."""
    improvement = challenger_score - champion_score
    return PROMOTE if improvement > 0 and improvement >= margin else KEEP


@dataclass(frozen=True)
class Challenge(Record):
    """The record of one champion/challenger comparison (`decision.json`)."""

    decision: str
    reason: str = ""
    metric: str = ""
    margin: float = 0.0
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

    def challenger_model(self) -> TrainedModel:
        return TrainedModel(
            self.run_id, self.dataset_version, self.family, self.params, self.challenger,
            self.model_uri,
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

    from mlplatform.registry import get_champion, load_pipeline, model_uri
    from mlplatform.tracking import log_inputs, log_trial, start_parent_run
    from mlplatform.training import cross_validate, evaluate, refit_and_log, search

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
    frames = store.load_splits(metadata, spec)
    seed, folds = settings.RANDOM_SEED, settings.CV_FOLDS
    with start_parent_run(
        "retraining", metadata, settings, champion_version=str(champion.version)
    ) as run:
        log_inputs(metadata, frames, spec)
        if n_trials > 0:
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
        champion_scores = evaluate(champion_model, frames["test"], spec)
        _, challenger_scores, uri = refit_and_log(
            family, params, frames, seed, spec, prefix="challenger_"
        )
        decision = decide(
            champion_scores[metric], challenger_scores[metric], settings.PROMOTION_MARGIN
        )
        challenge = Challenge(
            decision=decision,
            metric=metric,
            margin=settings.PROMOTION_MARGIN,
            dataset_version=metadata.dataset_version,
            champion_version=str(champion.version),
            champion_dataset_version=champion.tags.get("dataset_version"),
            champion=champion_scores,
            challenger=challenger_scores,
            family=family,
            params=params,
            run_id=run.info.run_id,
            model_uri=uri,
            trigger=trigger or {},
        )
        mlflow.log_metrics({f"champion_{k}": v for k, v in champion_scores.items()})
        mlflow.log_params(
            {"decision": decision, "promotion_margin": settings.PROMOTION_MARGIN,
             "n_trials": n_trials, "challenger_family": family,
             "champion_version": champion.version}
        )  # fmt: skip
        mlflow.set_tag("decision", decision)
        mlflow.log_dict(challenge.to_dict(), "decision.json")
    return challenge


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
