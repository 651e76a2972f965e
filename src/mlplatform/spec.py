"""The dataset the platform runs on. Point SPEC at another spec module to adapt the platform."""

from mlplatform.dataset import DatasetSpec
from mlplatform.heart_disease import HEART_DISEASE

SPEC: DatasetSpec = HEART_DISEASE
