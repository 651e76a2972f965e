"""Pipeline subcommands: deliver data, trigger the DAGs, print the champion's lineage."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mlplatform.settings import Settings, get_settings

PIPELINE_DAGS = ("etl", "train", "retrain", "monitor")
# `make demo` only: a short search shows the whole loop sooner; the DAG's default is N_TRIALS.
DEMO_TRIALS = 5


def cmd_deliver(args: argparse.Namespace) -> int:
    from mlplatform.errors import PlatformError
    from mlplatform.ingest import deliver

    s = get_settings()
    try:
        key, new = deliver(args.source, s, Path(args.file) if args.file else None)
    except (ValueError, FileNotFoundError) as err:
        raise PlatformError(str(err)) from err
    where = f"s3://{s.DATA_REPO_BUCKET_NAME}/{key}"
    print(f"delivered {where}" if new else f"{where} already holds these bytes: nothing to do")
    if new:
        print("next: trigger the `etl` DAG (`mlplatform trigger etl`, or in the Airflow UI)")
    return 0


def cmd_withdraw(args: argparse.Namespace) -> int:
    from mlplatform.ingest import withdraw

    keys = withdraw(args.source, get_settings())
    print("\n".join(f"removed {k}" for k in keys) or f"nothing delivered for {args.source}")
    return 0


def trigger(
    dag_id: str, settings: Settings, n_trials: int | None = None, timeout: float = 1800
) -> str:
    """Trigger a pipeline DAG over Airflow's REST API as the UI does, and follow it."""
    from mlplatform.airflow_client import AirflowClient

    conf = {"n_trials": n_trials} if n_trials is not None else {}
    return AirflowClient(settings).run(dag_id, conf, timeout)


def cmd_trigger(args: argparse.Namespace) -> int:
    trigger(args.dag, get_settings(), args.n_trials)
    return 0


def cmd_lineage(args: argparse.Namespace) -> int:
    from mlplatform.errors import PlatformError
    from mlplatform.lineage import format_lineage, lineage

    try:
        info = lineage(get_settings(), args.alias)
    except LookupError as err:
        raise PlatformError(str(err)) from err
    print(json.dumps(info, indent=2, default=str) if args.json else format_lineage(info))
    return 0


def demo_step(settings: Settings) -> None:
    """Seed, ETL, training over the REST API; then the champion and where to look."""
    from mlplatform.ingest import seed_landing
    from mlplatform.lineage import format_lineage, lineage

    seed_landing(settings)
    trigger("etl", settings)
    print(f"train: a short search of {DEMO_TRIALS} trials for the demo (param n_trials; the DAG's")
    print(f"default is {settings.N_TRIALS}, `mlplatform trigger train --n-trials N` sets it)")
    trigger("train", settings, DEMO_TRIALS)
    print(format_lineage(lineage(settings)))
    print(
        f"\nMLflow experiment: {settings.mlflow_tracking_uri}   Airflow DAGs: {settings.airflow_url}/dags"
    )


def retrain_demo_step(settings: Settings) -> None:
    """A new hospital's file arrives: ETL, then retraining starts by itself (Asset)."""
    from collections import defaultdict

    from mlplatform import registry
    from mlplatform.airflow_client import AirflowClient
    from mlplatform.ingest import deliver, read_deliveries
    from mlplatform.lake import Lake
    from mlplatform.lineage import format_lineage, lineage
    from mlplatform.spec import SPEC

    delivered = {d.source for d in read_deliveries(Lake(settings))}
    pending = [source for source in SPEC.deliveries if source not in delivered]
    client = AirflowClient(settings)
    client.wait_for_dag("retrain")
    seen = {r["dag_run_id"] for r in client.runs("retrain")}
    if pending:
        deliver(pending[0], settings)
        print(f"delivered {pending[0]} into the landing zone; running the ETL")
        trigger("etl", settings)
        run = client.wait_for_new_run("retrain", seen, timeout=600)
        print(f"retrain: started by the dataset Asset ({run['run_type']}), run {run['dag_run_id']}")
        client.follow("retrain", run["dag_run_id"])
    else:
        print("every hospital's file is delivered already: retraining on demand")
        trigger("retrain", settings)
    challenger = registry.get_alias(registry.CHALLENGER, settings)
    if challenger is not None:
        run = registry.configure(settings).get_run(challenger.tags[registry.TRAINING_RUN_TAG])
        metric = f"test_{SPEC.optimise_metric}"
        scores = defaultdict(lambda: float("nan"), run.data.metrics)  # undefined: not logged
        print(
            f"on the same test split: champion {metric} {scores['champion_' + metric]:.3f}, "
            f"challenger (version {challenger.version}) {scores['challenger_' + metric]:.3f}; "
            f"improvement {scores['gate_improvement']:+.3f}, "
            f"{scores['gate_confidence']:.0%} interval [{scores['gate_improvement_low']:+.3f}, "
            f"{scores['gate_improvement_high']:+.3f}], McNemar {scores['mcnemar_b']:.0f} vs "
            f"{scores['mcnemar_c']:.0f} (p = {scores['mcnemar_p_value']:.2f}) "
            f"-> decision: {challenger.tags.get('decision')}"
        )
    print(format_lineage(lineage(settings)))


def register(subparsers: Any) -> None:
    from mlplatform.spec import SPEC

    p = subparsers.add_parser("deliver", help="drop a hospital's file into the landing zone")
    p.add_argument("source", help=f"source name: {', '.join(SPEC.deliveries)}, or any with --file")
    p.add_argument("--file", help="deliver this file instead of the known source's UCI file")
    p.set_defaults(func=cmd_deliver)
    p = subparsers.add_parser("withdraw", help="remove a source's files from the landing zone")
    p.add_argument("source")
    p.set_defaults(func=cmd_withdraw)
    p = subparsers.add_parser(
        "trigger", help="trigger a pipeline DAG over Airflow's REST API and wait"
    )
    p.add_argument("dag", choices=PIPELINE_DAGS)
    p.add_argument("--n-trials", type=int, help="Optuna trials (train, retrain)")
    p.set_defaults(func=cmd_trigger)
    p = subparsers.add_parser("lineage", help="print where the champion comes from")
    p.add_argument("--alias", default="champion", help="registry alias (default: champion)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_lineage)
