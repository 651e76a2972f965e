"""Where a registered model comes from: `mlplatform lineage` prints it.

Model version -> training run (params, metrics, git commit) -> dataset version ->
the deliveries in the landing zone it was built from (with their digests).
"""

from __future__ import annotations

import json
from typing import Any

from mlplatform.lake import Lake
from mlplatform.model_card import card_from_tags
from mlplatform.registry import CHAMPION, TRAINING_RUN_TAG, configure, get_alias
from mlplatform.settings import Settings
from mlplatform.store import DataStore


def lineage(settings: Settings, alias: str = CHAMPION) -> dict[str, Any]:
    s = settings
    mv = get_alias(alias, s)
    if mv is None:
        raise LookupError(f"no model has the alias {alias!r} yet: run the training DAG first")
    client = configure(s)
    tags = dict(mv.tags)
    run = client.get_run(tags[TRAINING_RUN_TAG])
    dataset = DataStore(Lake(s)).read_version(tags["dataset_version"]).to_dict()
    aliases = list(client.get_registered_model(s.REGISTERED_MODEL_NAME).aliases.items())
    return {
        "model": s.REGISTERED_MODEL_NAME,
        "version": str(mv.version),
        "aliases": sorted(a for a, v in aliases if str(v) == str(mv.version)),
        "created": mv.creation_timestamp,
        "trained_by": tags.get("trained_by"),
        "model_family": tags.get("model_family"),
        "params": json.loads(tags.get("params", "{}")),
        "metrics": {
            k: float(v) for k, v in tags.items() if k.startswith("test_") and "_ci_" not in k
        },
        # threshold, calibration, 95% intervals of the test metrics, per-hospital table
        **card_from_tags(tags),
        "git_commit": tags.get("git_commit"),
        "run_id": run.info.run_id,
        "run_url": f"{s.mlflow_tracking_uri}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}",
        "dataset_version": dataset["dataset_version"],
        "dataset_created_at": dataset["created_at"],
        "dataset_counts": dataset["counts"],
        "deliveries": dataset["deliveries"],
        "splits": {k: f"s3://{dataset['bucket']}/{v}" for k, v in dataset["keys"].items()},
    }


def format_lineage(info: dict[str, Any]) -> str:
    lines = [
        f"model        {info['model']} version {info['version']} "
        f"(aliases: {', '.join(info['aliases']) or '-'}; by {info['trained_by']})",
        f"family       {info['model_family']}",
        f"params       {json.dumps(info['params'], sort_keys=True)}",
        "metrics      " + ", ".join(f"{k}={v:.3f}" for k, v in sorted(info["metrics"].items())),
        *(
            [
                "95% CI       "
                + ", ".join(
                    f"{k} [{i['low']:.3f}, {i['high']:.3f}]"
                    for k, i in sorted(info["intervals"].items())
                )
            ]
            if info.get("intervals")
            else []
        ),
        f"threshold    {info.get('threshold', 0.5)} ({info.get('threshold_policy') or 'default'}; "
        f"calibration {info.get('calibration') or 'none'})",
        f"git commit   {info['git_commit']}",
        f"mlflow run   {info['run_url']}",
        f"dataset      {info['dataset_version']} (created {info['dataset_created_at']}; "
        f"{info['dataset_counts']['rows_train']} train / {info['dataset_counts']['rows_test']} test rows, "
        f"{info['dataset_counts']['rows_quarantined']} quarantined)",
    ]
    for d in info["deliveries"]:
        lines.append(
            f"  delivery   {d['source']:12s} {d['rows']:4d} rows  md5 {d['md5']}  s3://.../{d['key']}"
        )
    for name, uri in info["splits"].items():
        lines.append(f"  {name:10s} {uri}")
    return "\n".join(lines)
