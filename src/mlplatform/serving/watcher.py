"""The served model and its hot swap.

A `ModelHolder` keeps one immutable `LoadedModel`. A background watcher polls the registry
for the `champion` alias and swaps in a new `LoadedModel` by replacing one reference, so a
request that already took the old one finishes on it and the request path never calls the
registry. A version the platform refuses to load (not skops, untrusted types) is never
served: the previous model stays, and readiness reports `degraded` with the reason.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from mlplatform.inference.loading import LoadedModel, load_model
from mlplatform.serving.background import Periodic
from mlplatform.settings import Settings

log = logging.getLogger(__name__)


def configure_mlflow_client_env(settings: Settings) -> None:
    """Fail fast instead of MLflow's minutes of retries, so readiness turns degraded quickly;
    no progress bars in the service log."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(settings.MLFLOW_TIMEOUT_SECONDS)))
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


class ModelHolder:
    """The current model plus the registry's health, as the watcher last saw them."""

    def __init__(
        self, settings: Settings, on_swap: Callable[[LoadedModel], None] | None = None
    ) -> None:
        self.settings = settings
        self.current: LoadedModel | None = None
        self.registry_error: str | None = None
        self.on_swap = on_swap
        self.watcher = Periodic(
            "model-watcher", self.poll_once, lambda: self.settings.MODEL_POLL_SECONDS, True
        )

    def swap(self, model: LoadedModel) -> None:
        self.current = model  # one reference assignment: atomic for readers
        if self.on_swap:
            self.on_swap(model)

    def poll_once(self) -> bool:
        """Check the champion alias; load and swap if it moved. True when a new model went in."""
        from mlplatform import registry

        try:
            champion = registry.get_champion(self.settings)
            if champion is None or (
                self.current is not None and str(champion.version) == self.current.version
            ):
                self.registry_error = None
                return False
            model = load_model(self.settings, champion, fast=True)
        except Exception as err:  # registry or S3 down, or a refused model: keep serving
            self.registry_error = f"{type(err).__name__}: {str(err)[:300]}"
            log.warning("model poll failed: %s", self.registry_error)
            return False
        self.registry_error = None
        self.swap(model)
        log.info("serving %s version %s (%s)", model.name, model.version, model.backend)
        return True

    def start(self) -> None:
        self.watcher.start()

    def stop(self) -> None:
        self.watcher.stop()
