"""The dataset the platform works on. Swap SPEC to adapt the platform to other data."""

from mlplatform.heart_disease import HEART_DISEASE, DatasetSpec

SPEC: DatasetSpec = HEART_DISEASE
