"""JSON bodies for the prediction API built from feature frames (shared by the e2e tests)."""

from __future__ import annotations

from typing import Any

import numpy as np


def rows_as_json(frame: Any) -> list[dict[str, Any]]:
    """Frame rows as the API takes them: codes as ints, missing values as null."""
    return [
        {
            k: (None if np.isnan(v) else int(v) if float(v).is_integer() else float(v))
            for k, v in r.items()
        }
        for r in frame.to_dict("records")
    ]
