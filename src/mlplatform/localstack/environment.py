"""The environment every program of the stack gets, derived from the settings.

Its own light module: every entrypoint runs `mlplatform env` at start, on the stack's 2 cores.
"""

from __future__ import annotations

from mlplatform.settings import Settings


def export_env(s: Settings) -> dict[str, str]:
    """Every setting plus the derived service environment, as strings."""
    env: dict[str, str] = {}
    for name in type(s).model_fields:
        field_info = type(s).model_fields[name]
        env[field_info.alias or name] = str(getattr(s, name))
    env.update(s.service_env())
    return env
