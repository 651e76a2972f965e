"""Prometheus's local config, made from the one compose uses (`monitoring/prometheus.yml`).

The shared file names its targets by compose service (`fastapi:8800`); here each known
service name becomes its 127.0.0.1 address, and a job whose targets all run only in
compose (e.g. Grafana) is left out. Relative rule files are made absolute.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mlplatform.settings import REPO_ROOT, Settings

SHARED_CONFIG = REPO_ROOT / "monitoring" / "prometheus.yml"
LOCAL_CONFIG = "prometheus.yml"


def local_addresses(s: Settings) -> dict[str, str]:
    """Compose service name -> host:port of the same service in the local stack."""
    return {
        "fastapi": f"{s.FASTAPI_HOST}:{s.FASTAPI_PORT}",
        "mlflow": f"{s.MLFLOW_HOST}:{s.MLFLOW_PORT}",
        "airflow-apiserver": f"{s.AIRFLOW_HOST}:{s.AIRFLOW_PORT}",
        "prometheus": f"{s.BIND_HOST}:{s.PROMETHEUS_PORT}",
        "localhost": f"{s.BIND_HOST}:{s.PROMETHEUS_PORT}",
    }


def _host(target: str) -> str:
    return target.rsplit(":", 1)[0]


def localize(shared: dict[str, Any], addresses: dict[str, str], base: Path) -> dict[str, Any]:
    """The shared config with compose targets replaced by local ones (pure: no I/O)."""
    config = dict(shared)
    config["rule_files"] = [str(base / f) for f in shared.get("rule_files") or []]
    jobs = []
    for job in shared.get("scrape_configs") or []:
        hosts = [_host(t) for sc in job.get("static_configs") or [] for t in sc.get("targets", [])]
        # Replicas found by DNS in compose are one process here.
        hosts += [_host(n) for sd in job.get("dns_sd_configs") or [] for n in sd.get("names", [])]
        local = sorted({addresses[h] for h in hosts if h in addresses})
        if not local:
            continue
        job = {k: v for k, v in job.items() if not k.endswith("_sd_configs")}
        job["static_configs"] = [{"targets": local}]
        jobs.append(job)
    config["scrape_configs"] = jobs
    if not config["rule_files"]:
        del config["rule_files"]
    return config


def write_local_config(s: Settings, folder: Path, shared: Path = SHARED_CONFIG) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = localize(yaml.safe_load(shared.read_text()), local_addresses(s), shared.parent)
    path = folder / LOCAL_CONFIG
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        f"# Made by the local stack from {shared}: do not edit.\n" + yaml.safe_dump(config)
    )
    tmp.replace(path)
    return path
