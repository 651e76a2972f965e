"""Monitoring: data and prediction drift, live performance from outcomes, the degradation policy.

Pure functions over pandas frames; the monitoring DAG, the `/feedback` endpoint and the lake
wiring call them. Results are dataclasses with `to_dict()`/`from_dict()` (JSON, XCom).
Nothing here imports Evidently at module import time: Airflow parses DAG files that import it.
"""
