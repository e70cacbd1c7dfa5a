"""The Shapley engine against plain brute force, against shap's exact explainer, and on models whose
Shapley values are known."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import shap

from mlscope.data.loader import load_titanic
from mlscope.explain import artifacts, views
from mlscope.explain.model_eval import Codebook
from mlscope.explain.shapley import ShapleyExplainer, sample_background
from mlscope.training.experiments import load_plan, quiet_seed_deprecations
from mlscope.training.features import build_pipeline
from mlscope.training.prepare import Split


@pytest.fixture(scope="module")
def titanic_models():
    data = load_titanic()
    plan = load_plan()
    split = Split.make(data, plan.split)
    models = {}
    with quiet_seed_deprecations():
        for spec in plan.select():
            models[spec.name] = build_pipeline(data, spec.build()).fit(split.X_train, split.y_train)
    return split, models


def brute_force(predict, rows: pd.DataFrame, background: pd.DataFrame) -> np.ndarray:
    """Shapley's formula, written out: every coalition, every background row, no shortcuts."""
    features = list(rows.columns)
    m = len(features)
    out = np.zeros((len(rows), m))
    for r in range(len(rows)):
        x = rows.iloc[[r]]
        cache: dict[frozenset[str], float] = {}

        def v(coalition: tuple[str, ...]) -> float:
            key = frozenset(coalition)
            if key not in cache:
                hybrid = background.copy()
                for feature in coalition:
                    hybrid[feature] = x[feature].iloc[0]
                cache[key] = float(np.mean(predict(hybrid)))
            return cache[key]

        for i, feature in enumerate(features):
            others = [f for f in features if f != feature]
            for size in range(m):
                weight = math.factorial(size) * math.factorial(m - size - 1) / math.factorial(m)
                for coalition in itertools.combinations(others, size):
                    out[r, i] += weight * (v((*coalition, feature)) - v(coalition))
    return out


@pytest.mark.parametrize("name", ["rf-baseline", "rf-tuned", "logistic-regression", "svm"])
def test_fast_and_raw_paths_equal_brute_force(titanic_models, name: str) -> None:
    split, models = titanic_models
    model = models[name]
    rows = split.X_test.iloc[[0, 17]]
    background = sample_background(split.X_train, 12, seed=1)
    expected = brute_force(lambda frame: model.predict_proba(frame)[:, 1], rows, background)
    closed = ShapleyExplainer(model, background).explain(rows)
    fast = ShapleyExplainer(model, background, closed_forms=False).explain(rows)
    raw = ShapleyExplainer(model, background, fast_path=False).explain(rows)
    assert closed.metadata["path"] == ("tree" if name.startswith("rf") else "enumeration")
    assert fast.metadata["evaluator"] == "feature-blocks" and raw.metadata["evaluator"] == "raw"
    for explanation in (closed, fast, raw):
        assert np.abs(explanation.values - expected).max() <= 1e-9


@pytest.mark.parametrize("name", ["rf-baseline", "rf-tuned", "logistic-regression", "svm"])
def test_equals_shap_exact_explainer(titanic_models, name: str) -> None:
    split, models = titanic_models
    model = models[name]
    rows = split.X_test.iloc[:8]
    background = sample_background(split.X_train, 40, seed=42)
    ours = ShapleyExplainer(model, background).explain(rows)
    # shap needs numbers: hand it integer codes and decode them back to raw records for the model.
    codebook = Codebook([rows, background], list(rows.columns))
    f = lambda codes: model.predict_proba(codebook.decode(np.asarray(codes, dtype=np.int64)))[:, 1]  # noqa: E731
    masker = shap.maskers.Independent(codebook.encode(background), max_samples=len(background))
    reference = shap.explainers.Exact(f, masker)(codebook.encode(rows))
    assert np.abs(ours.values - reference.values).max() <= 1e-9
    assert np.abs(ours.base_value - np.asarray(reference.base_values)).max() <= 1e-9


@pytest.mark.parametrize("name", ["rf-baseline", "rf-tuned", "logistic-regression", "svm"])
def test_additivity_on_the_whole_test_split(titanic_models, name: str) -> None:
    split, models = titanic_models
    explanation = ShapleyExplainer(models[name], sample_background(split.X_train)).explain(split.X_test)
    assert explanation.additivity_errors.max() <= 1e-6
    assert explanation.metadata["max_additivity_error"] <= 1e-6
    assert explanation.metadata["exact"] is True and explanation.metadata["background_size"] == 100
    assert np.allclose(explanation.outputs, models[name].predict_proba(split.X_test)[:, 1], atol=1e-12)


class Additive:
    """P = 0.1 + sum of coefficient * x (a model whose Shapley values are known in closed form)."""

    classes_ = np.array([0, 1])

    def __init__(self, coefficients: dict[str, float]) -> None:
        self.coefficients = coefficients

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        p = 0.1 + sum(c * frame[f].to_numpy(dtype=float) for f, c in self.coefficients.items())
        return np.column_stack([1 - p, p])


class Product:
    """P = a * b / 4 + 0 * c: a and b play symmetric roles, c is a dummy."""

    classes_ = np.array([0, 1])

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        p = frame["a"].to_numpy(dtype=float) * frame["b"].to_numpy(dtype=float) / 4
        return np.column_stack([1 - p, p])


def test_symmetry_and_dummy() -> None:
    rng = np.random.default_rng(0)
    background = pd.DataFrame({"a": rng.integers(0, 2, 30), "b": rng.integers(0, 2, 30), "c": rng.normal(size=30)})
    background["b"] = background["a"].sample(frac=1, random_state=1).to_numpy()  # same distribution as a
    rows = pd.DataFrame({"a": [1, 0, 1], "b": [1, 1, 0], "c": [5.0, -2.0, 0.3]})
    explanation = ShapleyExplainer(Product(), background).explain(rows)
    phi = pd.DataFrame(explanation.values, columns=["a", "b", "c"])
    assert np.allclose(phi["c"], 0.0, atol=1e-15)  # dummy
    # symmetry: swapping a and b in the row swaps their values (a and b enter the model alike)
    swapped = ShapleyExplainer(Product(), background.rename(columns={"a": "b", "b": "a"})[["a", "b", "c"]]
                               ).explain(rows.rename(columns={"a": "b", "b": "a"})[["a", "b", "c"]])
    assert np.allclose(phi["a"], swapped.values[:, 1], atol=1e-15)
    assert phi.loc[0, "a"] == pytest.approx(phi.loc[0, "b"]) or not np.isclose(background.a.mean(), background.b.mean())


def test_additive_model_has_closed_form_values() -> None:
    rng = np.random.default_rng(3)
    background = pd.DataFrame({"a": rng.normal(size=50), "b": rng.normal(size=50), "c": rng.normal(size=50)})
    rows = pd.DataFrame({"a": [1.0, -1.0], "b": [0.5, 2.0], "c": [0.0, 1.0]})
    coefficients = {"a": 0.05, "b": -0.02, "c": 0.0}
    explanation = ShapleyExplainer(Additive(coefficients), background).explain(rows)
    for j, (feature, c) in enumerate(coefficients.items()):
        assert np.allclose(explanation.values[:, j], c * (rows[feature] - background[feature].mean()), atol=1e-12)


def test_beyond_twelve_features_is_approximate_and_says_so() -> None:
    rng = np.random.default_rng(5)
    names = [f"x{i}" for i in range(14)]
    background = pd.DataFrame(rng.normal(size=(20, 14)), columns=names)
    rows = pd.DataFrame(rng.normal(size=(3, 14)), columns=names)
    coefficients = {name: 0.01 * (i + 1) for i, name in enumerate(names)}
    explanation = ShapleyExplainer(Additive(coefficients), background).explain(rows)
    assert explanation.metadata["exact"] is False and "permutation sampling" in explanation.metadata["algorithm"]
    assert explanation.metadata["path"] == "sampling" and explanation.metadata["converged"] is True
    assert explanation.standard_errors is not None and explanation.standard_errors.max() <= 1e-12
    assert explanation.additivity_errors.max() <= 1e-12  # efficiency holds for every permutation
    # For an additive model every marginal contribution is the same, so even sampling is exact.
    expected = np.column_stack([c * (rows[f] - background[f].mean()) for f, c in coefficients.items()])
    assert np.allclose(explanation.values, expected, atol=1e-12)


def test_artifact_round_trip_and_views(titanic_models, tmp_path) -> None:
    split, models = titanic_models
    background = sample_background(split.X_train, 30)
    explanation = ShapleyExplainer(models["logistic-regression"], background).explain(
        split.X_test.iloc[:20], row_ids=list(split.test_ids.iloc[:20]))
    path = artifacts.write(explanation, background, tmp_path)
    again, background_again = artifacts.read(path)
    assert again.features == explanation.features and again.row_ids == explanation.row_ids
    assert np.array_equal(again.values, explanation.values) and again.base_value == explanation.base_value
    assert again.data["Embarked"].isna().sum() == explanation.data["Embarked"].isna().sum()
    # The stored background reproduces the explanation exactly.
    recomputed = ShapleyExplainer(models["logistic-regression"], background_again).explain(again.data)
    assert np.abs(recomputed.values - explanation.values).max() <= 1e-12

    ranking = views.global_importance(explanation)
    assert ranking[0]["feature"] == "Sex"
    step = views.waterfall(explanation, 0)
    magnitudes = [abs(c["shap"]) for c in step["contributions"]]
    assert magnitudes == sorted(magnitudes, reverse=True)
    assert step["base_value"] + sum(c["shap"] for c in step["contributions"]) == pytest.approx(step["output"])
    assert views.dependence(explanation, "Age")["colour_feature"] in explanation.features
    same = views.compare(explanation, explanation)
    assert same["spearman"] == pytest.approx(1.0) and same["shared_rows"] == 20
    assert all(v == 0 for v in same["mean_abs_difference"].values())
    other = ShapleyExplainer(models["svm"], background).explain(split.X_test.iloc[:20],
                                                                 row_ids=list(split.test_ids.iloc[:20]))
    versus = views.compare(explanation, other)
    assert -1 <= versus["spearman"] <= 1 and versus["rank_challenger"][0] == "Sex"


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported explanation format"):
        artifacts.from_json({"format": "mlscope.shap/99"})


@pytest.mark.parametrize("name", ["rf-baseline", "rf-tuned", "logistic-regression", "svm"])
def test_estimator_fast_paths_reproduce_predict_proba(titanic_models, name: str) -> None:
    from mlscope.estimators import estimator_head

    split, models = titanic_models
    encoded = models[name].named_steps["preprocess"].transform(split.X_test)
    estimator = models[name].named_steps["model"]
    head, kind = estimator_head(estimator, 1)
    assert ("forest" in kind) == name.startswith("rf")
    assert np.abs(head(encoded) - estimator.predict_proba(encoded)[:, 1]).max() <= 1e-12


def test_one_explainer_serves_new_values_without_changing_old_codes(titanic_models) -> None:
    split, models = titanic_models
    background = sample_background(split.X_train, 30)
    explainer = ShapleyExplainer(models["svm"], background)
    unseen = pd.DataFrame([{"Pclass": 2.0, "Sex": "female", "Age": 123.5, "SibSp": 9.0, "Parch": 0.0,
                            "Fare": 512.3292, "Embarked": "Z"}])
    first = explainer.explain(unseen)
    again = explainer.explain(split.X_test.iloc[:3])  # after the codebook grew for the unseen row
    fresh = ShapleyExplainer(models["svm"], background).explain(split.X_test.iloc[:3])
    assert np.abs(again.values - fresh.values).max() <= 1e-12
    assert first.additivity_errors.max() <= 1e-9
    expected = brute_force(lambda frame: models["svm"].predict_proba(frame)[:, 1], unseen, background)
    assert np.abs(first.values - expected).max() <= 1e-9


@pytest.mark.parametrize("name", ["rf-tuned", "svm"])
def test_one_row_path_equals_the_batch_path(titanic_models, name: str) -> None:
    split, models = titanic_models
    explainer = ShapleyExplainer(models[name], sample_background(split.X_train, 50))
    batch = explainer.explain(split.X_test.iloc[:6])
    for i in range(6):
        single = explainer.explain(split.X_test.iloc[[i]])
        assert np.abs(single.values[0] - batch.values[i]).max() <= 1e-12
        assert single.base_value == pytest.approx(batch.base_value, abs=1e-15)
        assert single.outputs[0] == pytest.approx(batch.outputs[i], abs=1e-15)
