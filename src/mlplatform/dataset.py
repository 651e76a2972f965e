"""The generic description of a dataset: features, target, deliveries, cleaning and search space.

Everything example-specific (column names, codes, ranges, the search space) is data in a spec
module such as `heart_disease.py`; `mlplatform.spec.SPEC` selects the one the platform runs on.
The rest of the package reads only these types, so another dataset needs only another spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class NumericFeature:
    name: str
    description: str
    minimum: float
    maximum: float
    unit: str = ""
    integer: bool = False


@dataclass(frozen=True)
class CategoricalFeature:
    name: str
    description: str
    codes: dict[int, str]


@dataclass(frozen=True)
class Param:
    """One hyperparameter's range: `kind` is "int", "float" or "choice"."""

    kind: str
    low: float = 0
    high: float = 0
    log: bool = False
    choices: tuple[object, ...] = ()


# eq=False: a spec is compared and hashed by identity, so it can key caches.
@dataclass(frozen=True, eq=False)
class DatasetSpec:
    name: str
    # What the model predicts, for people: page and API titles ("Heart disease").
    display_name: str
    raw_columns: tuple[str, ...]
    numeric: tuple[NumericFeature, ...]
    categorical: tuple[CategoricalFeature, ...]
    raw_target: str
    target: str
    positive_label: str
    negative_label: str
    missing_marker: str
    deliveries: dict[str, str] = field(default_factory=dict)
    initial_delivery: str = ""
    # Codes some sources use for "not measured" (e.g. cholesterol 0): read as missing.
    missing_codes: dict[str, tuple[float, ...]] = field(default_factory=dict)
    # Cleaning rule: a row missing more features than this is dropped; the model imputes the rest.
    max_missing_features: int = 4
    # A delivery where more rows than this fraction fail validation is the wrong file: rejected whole.
    max_invalid_fraction: float = 0.5
    # Hyperparameter search: the metric optimised (an sklearn scorer), others reported, the space.
    optimise_metric: str = "f1"
    report_metrics: tuple[str, ...] = ("f1", "roc_auc", "accuracy", "precision", "recall")
    search_space: dict[str, dict[str, Param]] = field(default_factory=dict)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(c for c in self.raw_columns if c != self.raw_target)

    @property
    def numeric_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.numeric)

    @property
    def categorical_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.categorical)

    @property
    def features(self) -> tuple[NumericFeature | CategoricalFeature, ...]:
        """Every feature's description, in `feature_names` order."""
        both: tuple[NumericFeature | CategoricalFeature, ...] = (*self.numeric, *self.categorical)
        by_name = {f.name: f for f in both}
        return tuple(by_name[name] for name in self.feature_names)

    @property
    def label_names(self) -> dict[int, str]:
        return {0: self.negative_label, 1: self.positive_label}
