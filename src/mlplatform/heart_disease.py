"""The UCI Heart Disease example, as data: columns, codes, clinical ranges, target rule,
deliveries (one file per hospital) and the hyperparameter search space.

To adapt the platform to another dataset, write a module like this one and point
`mlplatform.spec.SPEC` at it.
"""

from mlplatform.dataset import CategoricalFeature, DatasetSpec, NumericFeature, Param

HEART_DISEASE = DatasetSpec(
    name="uci_heart_disease",
    display_name="Heart disease",
    raw_columns=(
        "age",
        "sex",
        "cp",
        "trestbps",
        "chol",
        "fbs",
        "restecg",
        "thalach",
        "exang",
        "oldpeak",
        "slope",
        "ca",
        "thal",
        "num",
    ),
    numeric=(
        NumericFeature("age", "Age", 18, 100, "years", integer=True),
        NumericFeature("trestbps", "Resting blood pressure", 60, 250, "mm Hg"),
        # Some hospitals record a missing cholesterol as 0: outside the range, so it is quarantined or imputed.
        NumericFeature("chol", "Serum cholesterol", 80, 700, "mg/dl"),
        NumericFeature("thalach", "Maximum heart rate achieved", 50, 250, "bpm"),
        NumericFeature(
            "oldpeak", "ST depression induced by exercise relative to rest", -5, 10, "mm"
        ),
        NumericFeature(
            "ca", "Number of major vessels colored by fluoroscopy", 0, 3, "vessels", integer=True
        ),
    ),
    categorical=(
        CategoricalFeature("sex", "Sex", {0: "female", 1: "male"}),
        CategoricalFeature(
            "cp",
            "Chest pain type",
            {1: "typical angina", 2: "atypical angina", 3: "non-anginal pain", 4: "asymptomatic"},
        ),
        CategoricalFeature("fbs", "Fasting blood sugar > 120 mg/dl", {0: "false", 1: "true"}),
        CategoricalFeature(
            "restecg",
            "Resting electrocardiographic results",
            {0: "normal", 1: "ST-T wave abnormality", 2: "left ventricular hypertrophy"},
        ),
        CategoricalFeature("exang", "Exercise induced angina", {0: "no", 1: "yes"}),
        CategoricalFeature(
            "slope", "Slope of the peak exercise ST segment", {1: "up", 2: "flat", 3: "down"}
        ),
        CategoricalFeature(
            "thal", "Thalassemia", {3: "normal", 6: "fixed defect", 7: "reversible defect"}
        ),
    ),
    raw_target="num",
    target="target",
    positive_label="disease",
    negative_label="no disease",
    missing_marker="?",
    deliveries={
        "cleveland": "processed.cleveland.data",
        "hungarian": "processed.hungarian.data",
        "switzerland": "processed.switzerland.data",
        "va": "processed.va.data",
    },
    initial_delivery="cleveland",
    missing_codes={"chol": (0,)},
    max_missing_features=4,
    # Families are built by mlplatform.training.MODEL_FAMILIES; ranges suit ~300-900 rows.
    search_space={
        "logistic_regression": {
            "C": Param("float", 1e-3, 100.0, log=True),
            "class_weight": Param("choice", choices=(None, "balanced")),
        },
        "svm": {
            "C": Param("float", 1e-2, 100.0, log=True),
            "gamma": Param("float", 1e-4, 1.0, log=True),
        },
        "random_forest": {
            "n_estimators": Param("int", 50, 200),
            "max_depth": Param("int", 2, 10),
            "min_samples_leaf": Param("int", 1, 10),
        },
        "gradient_boosting": {
            "learning_rate": Param("float", 0.01, 0.3, log=True),
            "max_iter": Param("int", 50, 200),
            "max_depth": Param("int", 2, 6),
            "l2_regularization": Param("float", 1e-4, 10.0, log=True),
        },
    },
)
