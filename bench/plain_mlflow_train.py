"""The "seed" Titanic job written the stock MLflow way, as a baseline for `bench/train_speed.py`.

It trains the same four models as `mlscope train` on the same 80/20 stratified split and, for
each, logs params, the six test metrics, a confusion-matrix figure and the model (registered as
"titanic-survival"), letting MLflow infer the model's pip requirements itself.

It does LESS work than `mlscope train`: no 5-fold cross-validation, no fairness slices, no ROC
curve, feature importance, classification report or predictions artifacts, no dataset input,
no version tags and no alias (MLflow infers the signature from the input example). Timings are therefore a
lower bound for the stock way, not a like-for-like comparison.

The tracking store is taken from MLFLOW_TRACKING_URI.
"""

from __future__ import annotations

import time
from importlib import resources

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import mlflow.sklearn  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.base import ClassifierMixin  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    ConfusionMatrixDisplay,
    accuracy_score,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402
from sklearn.svm import SVC  # noqa: E402

NUMERIC = ["Pclass", "Age", "SibSp", "Parch", "Fare"]
CATEGORICAL = ["Sex", "Embarked"]
FEATURES = ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]
TARGET = "Survived"
EXPERIMENT = "titanic"
MODEL_NAME = "titanic-survival"

MODELS: dict[str, ClassifierMixin] = {
    "rf-baseline": RandomForestClassifier(
        n_estimators=100, max_depth=None, min_samples_split=2, min_samples_leaf=1, random_state=42
    ),
    "rf-tuned": RandomForestClassifier(
        n_estimators=200, max_depth=10, min_samples_split=5, min_samples_leaf=2, random_state=42
    ),
    "logistic-regression": LogisticRegression(
        penalty="l2", C=1.0, solver="lbfgs", max_iter=1000, random_state=42
    ),
    "svm": SVC(kernel="rbf", C=1.0, gamma="scale", probability=True, random_state=42),
}


def make_pipeline(model: ClassifierMixin) -> Pipeline:
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = Pipeline([
        ("impute", SimpleImputer(strategy="most_frequent")),
        ("onehot", OneHotEncoder(handle_unknown="ignore")),
    ])
    preprocess = ColumnTransformer([("num", numeric, NUMERIC), ("cat", categorical, CATEGORICAL)])
    return Pipeline([("preprocess", preprocess), ("model", model)])


def test_metrics(pipe: Pipeline, X_test: pd.DataFrame, y_test: pd.Series) -> dict[str, float]:
    proba = pipe.predict_proba(X_test)[:, 1]
    pred = pipe.predict(X_test)
    return {
        "accuracy": accuracy_score(y_test, pred),
        "precision": precision_score(y_test, pred),
        "recall": recall_score(y_test, pred),
        "f1": f1_score(y_test, pred),
        "roc_auc": roc_auc_score(y_test, proba),
        "log_loss": log_loss(y_test, proba),
    }


def main() -> None:
    started = time.perf_counter()
    frame = pd.read_csv(str(resources.files("mlscope.data") / "titanic.csv"))
    X, y = frame[FEATURES], frame[TARGET]
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, stratify=y, random_state=42)

    mlflow.set_experiment(EXPERIMENT)
    for name, model in MODELS.items():
        with mlflow.start_run(run_name=name):
            pipe = make_pipeline(model).fit(X_train, y_train)
            mlflow.log_params(model.get_params())
            metrics = test_metrics(pipe, X_test, y_test)
            mlflow.log_metrics(metrics)

            display = ConfusionMatrixDisplay.from_estimator(pipe, X_test, y_test)
            display.ax_.set_title(name)
            mlflow.log_figure(display.figure_, "confusion_matrix.png")
            plt.close(display.figure_)

            mlflow.sklearn.log_model(
                pipe,
                name="model",
                input_example=X_train.head(5),
                registered_model_name=MODEL_NAME,
                serialization_format="cloudpickle",
            )
            print(f"{name}: roc_auc={metrics['roc_auc']:.3f}")
    print(f"plain MLflow: 4 runs in {time.perf_counter() - started:.1f}s "
          "(test metrics + confusion matrix + model only; no CV, slices, ROC/importance artifacts)")


if __name__ == "__main__":
    main()
