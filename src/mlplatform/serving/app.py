"""FastAPI prediction service: the registry's champion over REST, plus a web page.

Endpoints: POST /predict, POST /predict/batch, GET /health, /ready, /model,
/metrics and the page at /. The model comes from a background watcher
(`serving.model.ModelHolder`); requests only read the holder's current model.
"""

import gc
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import numpy as np
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.security import APIKeyHeader
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Security
from mlplatform.serving.metrics import RequestMetrics, ServingMetrics
from mlplatform.serving.model import LoadedModel, ModelHolder, configure_mlflow_client_env
from mlplatform.serving.page import render_page
from mlplatform.serving.prediction_log import PredictionLog
from mlplatform.serving.schemas import (
    LABEL_NAMES,
    BatchPrediction,
    ModelInfo,
    Patient,
    Prediction,
    batch_request_model,
    rows_to_matrix,
)
from mlplatform.settings import Settings, get_settings

log = logging.getLogger(__name__)
API_KEY_HEADER = "X-API-Key"


def _json_safe(value: Any) -> Any:
    """NaN/inf echoed back in an error would make the 422 itself fail to serialise."""
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 body (`detail`: one entry per field at fault, with its location)."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return JSONResponse({"detail": _json_safe(jsonable_encoder(errors))}, status_code=422)


def no_champion_message(settings: Settings) -> str:
    return (
        f"No champion model yet: the registry has no '{settings.REGISTERED_MODEL_NAME}@champion'. "
        f"Run the training DAG `train` in Airflow ({settings.airflow_url}) or `make demo`; "
        f"this service picks the champion up within {settings.MODEL_POLL_SECONDS:g} s."
    )


def freeze_heap() -> None:
    """Move what is alive now (imports, the model) out of the garbage collector's reach.

    Otherwise every full collection scans those ~300k long-lived objects: 150-220 ms with
    the GIL held, every few seconds under load, which is the service's p99. Frozen objects
    are still reference-counted, so a swapped-out model is still freed.
    """
    gc.collect()
    gc.freeze()


def create_app(
    settings: Settings | None = None, holder: ModelHolder | None = None, background: bool = True
) -> FastAPI:
    """The service. Tests pass a `holder` with a model and `background=False` (no watcher)."""
    s = settings or get_settings()
    serving_metrics = ServingMetrics(CollectorRegistry())
    holder = holder or ModelHolder(s)

    def model_swapped(model: LoadedModel) -> None:
        serving_metrics.model_swapped(model)
        freeze_heap()

    holder.on_swap = model_swapped
    if holder.current is not None:
        serving_metrics.model_swapped(holder.current)
    prediction_log = PredictionLog(s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if background:
            configure_mlflow_client_env()
            await run_in_threadpool(holder.poll_once)  # serve the champion from the first request
            freeze_heap()  # the imports, also when there is no champion yet
            holder.start()
            prediction_log.start()
        yield
        if background:
            holder.stop()
            await run_in_threadpool(prediction_log.stop)

    app = FastAPI(
        title="ML Models and something more Inc. — heart disease prediction API",
        description="Serves the model registry's `champion`. The web page is at `/`.",
        version="1",
        lifespan=lifespan,
    )
    app.add_exception_handler(RequestValidationError, validation_error)
    app.state.holder = holder
    app.state.prediction_log = prediction_log
    app.state.settings = s

    app.add_middleware(RequestMetrics, metrics=serving_metrics)

    key_header = APIKeyHeader(
        name=API_KEY_HEADER, auto_error=False, description="set when API_KEY is"
    )

    # Dependencies are `async def`: FastAPI runs a plain `def` one in the threadpool, and
    # those two thread hops cost more than the whole prediction.
    async def require_key(key: str | None = Security(key_header)) -> None:
        if s.API_KEY and not (key and secrets.compare_digest(key, s.API_KEY)):
            raise HTTPException(401, f"missing or wrong API key in the {API_KEY_HEADER} header")

    async def _current_model() -> LoadedModel:
        model = holder.current  # read once: this request finishes on this model
        if model is None:
            raise HTTPException(503, no_champion_message(s))
        return model

    CurrentModel = Annotated[LoadedModel, Depends(_current_model)]

    async def score(model: LoadedModel, endpoint: str, rows: list[Any]) -> list[dict[str, Any]]:
        """Predictions as plain dicts: they are built from trusted values, so the handlers
        return them as JSON directly instead of re-validating them against `response_model`."""
        x = rows_to_matrix(rows)
        if model.backend == "onnx":
            labels, proba = model.predictor.predict(x)  # ~0.05 ms: cheaper inline than a thread hop
        else:
            labels, proba = await run_in_threadpool(model.predictor.predict, x)
        prediction_log.record(endpoint, model.name, model.version, x, labels, proba)
        label_ids = labels.tolist()
        names = [LABEL_NAMES.get(label, str(label)) for label in label_ids]
        serving_metrics.count_predictions(names)
        return [
            {
                "label": label,
                "label_name": name,
                "probability": p,
                "model_name": model.name,
                "model_version": model.version,
            }
            for label, name, p in zip(label_ids, names, proba.tolist(), strict=True)
        ]

    responses: dict[int | str, dict[str, Any]] = {
        401: {"description": "API key missing or wrong (only when API_KEY is set)"},
        503: {"description": "No champion model yet"},
    }

    # Prediction routes: API key when configured, 503 without a champion.
    predicts = APIRouter(dependencies=[Depends(require_key)], responses=responses)

    # response_model documents the answer; returning a Response skips FastAPI's re-validation.
    @predicts.post("/predict", response_model=Prediction)
    async def predict(patient: Patient, model: CurrentModel) -> JSONResponse:  # type: ignore[valid-type]
        """Predict heart disease for one patient."""
        return JSONResponse((await score(model, "predict", [patient]))[0])

    BatchRequest = batch_request_model(s.MAX_BATCH_ROWS)

    @predicts.post("/predict/batch", response_model=BatchPrediction)
    async def predict_batch(body: BatchRequest, model: CurrentModel) -> JSONResponse:  # type: ignore[valid-type]
        """Predict for up to MAX_BATCH_ROWS patients; an error names the row and the field."""
        rows = body.rows  # type: ignore[attr-defined]
        return JSONResponse({"predictions": await score(model, "predict_batch", rows)})

    app.include_router(predicts)

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus_metrics() -> Response:
        """Prometheus metrics: requests and latency by endpoint and status, predictions by
        label, the model version in use, and the prediction log's backlog."""
        serving_metrics.log_buffered.set(prediction_log.buffered)
        serving_metrics.log_dropped.set(prediction_log.dropped)
        return Response(generate_latest(serving_metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/ready", responses={503: {"description": "No model loaded yet"}})
    async def ready() -> JSONResponse:
        """200 when a model is loaded ("degraded" if the registry or S3 is unreachable), else 503."""
        model = holder.current
        serving_metrics.log_buffered.set(prediction_log.buffered)
        serving_metrics.log_dropped.set(prediction_log.dropped)
        problems = {
            k: v
            for k, v in {
                "registry": holder.registry_error,
                "prediction_log": prediction_log.error,
            }.items()
            if v
        }
        if model is None:
            return JSONResponse(
                {"status": "no_model", "detail": no_champion_message(s), **problems},
                status_code=503,
            )
        body = {
            "status": "degraded" if problems else "ready",
            "model_version": model.version,
            **problems,
        }
        return JSONResponse(body)

    @app.get("/model", response_model=ModelInfo, responses={503: responses[503]})
    async def model_info(model: CurrentModel) -> dict[str, Any]:
        """The model in use: name, version, run id, dataset version, metrics, loaded-at."""
        return model.info()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(render_page(bool(s.API_KEY)))

    return app


app = create_app()
