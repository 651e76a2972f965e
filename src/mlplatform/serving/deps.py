"""The service's dependencies, as in fastapi's full-stack template: each is an `Annotated`
alias a route declares, reading the app's state. They are `async def`: FastAPI runs a plain
`def` dependency in the threadpool, and those thread hops cost more than a prediction."""

from __future__ import annotations

from typing import Annotated

from fastapi.security import APIKeyHeader

from fastapi import Depends, HTTPException, Request, Security
from mlplatform.inference.loading import LoadedModel, no_champion_message
from mlplatform.serving.guard import API_KEY_HEADER
from mlplatform.serving.prediction_log import PredictionLog
from mlplatform.serving.watcher import ModelHolder
from mlplatform.settings import Settings

# Documents the key in OpenAPI; `RequestGuard` checks it before the body is read.
api_key_header = APIKeyHeader(
    name=API_KEY_HEADER, auto_error=False, description="set when API_KEY is"
)


async def document_api_key(key: str | None = Security(api_key_header)) -> None:
    return None


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _holder(request: Request) -> ModelHolder:
    holder: ModelHolder = request.app.state.holder
    return holder


async def _prediction_log(request: Request) -> PredictionLog:
    log: PredictionLog = request.app.state.prediction_log
    return log


async def _current_model(request: Request) -> LoadedModel:
    model = request.app.state.holder.current  # read once: this request finishes on this model
    if model is None:
        raise HTTPException(503, no_champion_message(request.app.state.settings))
    result: LoadedModel = model
    return result


SettingsDep = Annotated[Settings, Depends(_settings)]
HolderDep = Annotated[ModelHolder, Depends(_holder)]
PredictionLogDep = Annotated[PredictionLog, Depends(_prediction_log)]
CurrentModel = Annotated[LoadedModel, Depends(_current_model)]
