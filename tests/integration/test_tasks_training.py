"""Regression and multiclass trained end to end by the CLI into real temporary MLflow stores: the
shipped diabetes and wine demos, and small CSVs for the rules (selection by the task's headline,
one-line errors)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from mlscope.task import TASK_TAG
from mlscope.tracking import registry
from tests.conftest import Store, invoke

pytestmark = pytest.mark.slow

REGRESSION_RUNS = ["ridge", "xgboost", "lightgbm"]
REGRESSION_ARTIFACTS = {"predicted_vs_actual.png", "residuals.png", "residuals_by_decile.csv",
                        "residuals_by_decile.json", "predictions.csv", "cv_folds.json", "feature_importance.json",
                        "feature_importance.png", "fairness.json"}
MULTICLASS_RUNS = ["logistic-regression", "random-forest", "svm", "xgboost", "lightgbm"]
MULTICLASS_ARTIFACTS = {"confusion_matrix.png", "confusion_matrix.json", "roc_curves.png", "roc_curves.json",
                        "classification_report.txt", "classification_report.json", "predictions.csv",
                        "cv_folds.json", "feature_importance.json", "feature_importance.png"}
WINE_CLASSES = ["class_0", "class_1", "class_2"]


def _runs(store: Store, experiment: str) -> dict[str, object]:
    client = store.client()
    found = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return {run.info.run_name: run for run in found}


def _download(store: Store, run: object, path: str, root: Path) -> Path:
    folder = root / run.info.run_id
    folder.mkdir(exist_ok=True)
    return Path(store.client().download_artifacts(run.info.run_id, path, str(folder)))


def _one_line_error(result: object, needle: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], result.output


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, object]:
    store = Store(tmp_path_factory.mktemp("diabetes"))
    args = ["train", "--dataset", "diabetes"] + [a for name in REGRESSION_RUNS for a in ("--only", name)]
    result = invoke(store, *args)
    assert result.exit_code == 0, result.output
    return store, result


@pytest.fixture(scope="module")
def wine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, object]:
    store = Store(tmp_path_factory.mktemp("wine"))
    result = invoke(store, "demo", "--dataset", "wine", "--no-serve")
    assert result.exit_code == 0, result.output
    return store, result


def test_regression_runs_are_tagged_and_log_their_artifacts(diabetes) -> None:
    store, result = diabetes
    runs = _runs(store, "diabetes")
    assert sorted(runs) == sorted(REGRESSION_RUNS)
    client = store.client()
    for name, run in runs.items():
        assert run.info.status == "FINISHED"
        assert run.data.tags[TASK_TAG] == "regression"
        listed = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert REGRESSION_ARTIFACTS <= listed, (name, REGRESSION_ARTIFACTS - listed)
        assert {"confusion_matrix.png", "roc_curve.json"}.isdisjoint(listed)
        for metric in ("rmse", "mae", "r2", "mape", "max_error"):
            assert metric in run.data.metrics and f"cv_{metric}_mean" in run.data.metrics
        for group in ("sex_1_0", "sex_2_0"):
            for metric in ("mae", "rmse", "mean_residual"):
                assert f"{group}_{metric}" in run.data.metrics
        assert run.data.metrics["sex_mae_difference"] == pytest.approx(
            abs(run.data.metrics["sex_1_0_mae"] - run.data.metrics["sex_2_0_mae"]))
    assert "Regression: experiment 'diabetes' → model 'diabetes-progression'" in result.output
    header = next(line for line in result.output.splitlines() if "rmse" in line and "run" in line)
    assert header.index("rmse") < header.index("mae") < header.index("r²")


def test_regression_metrics_equal_scikit_learn_on_the_logged_predictions(diabetes, tmp_path: Path) -> None:
    store, _ = diabetes
    for name, run in _runs(store, "diabetes").items():
        frame = pd.read_csv(_download(store, run, "predictions.csv", tmp_path))
        assert list(frame.columns) == ["row", "y_true", "prediction"] and len(frame) == 89
        y, p = frame["y_true"].to_numpy(), frame["prediction"].to_numpy()
        expected = {"rmse": np.sqrt(skm.mean_squared_error(y, p)), "mae": skm.mean_absolute_error(y, p),
                    "r2": skm.r2_score(y, p), "mape": skm.mean_absolute_percentage_error(y, p),
                    "max_error": skm.max_error(y, p)}
        for metric, value in expected.items():
            assert abs(run.data.metrics[metric] - value) <= 1e-9, (name, metric)
        deciles = pd.read_csv(_download(store, run, "residuals_by_decile.csv", tmp_path))
        assert len(deciles) == 10 and deciles["rows"].sum() == 89
        assert (deciles["mean_prediction"].diff().dropna() > 0).all()
        assert deciles["mean_residual"].mul(deciles["rows"]).sum() / 89 == pytest.approx(np.mean(y - p))


def test_regression_folds_are_plain_k_fold(diabetes, tmp_path: Path) -> None:
    store, _ = diabetes
    run = _runs(store, "diabetes")["ridge"]
    folds = json.loads(_download(store, run, "cv_folds.json", tmp_path).read_text())
    assert folds["stratified"] is False and len(folds["values"]["rmse"]) == 5
    assert run.data.metrics["cv_rmse_mean"] == pytest.approx(np.mean(folds["values"]["rmse"]))


def test_regression_explanations_explain_the_prediction(diabetes, tmp_path: Path) -> None:
    store, _ = diabetes
    for name, run in _runs(store, "diabetes").items():
        assert "mlscope.explain_error" not in run.data.tags
        explanation = json.loads(_download(store, run, "explanations/test.json", tmp_path).read_text())
        assert explanation["metadata"]["model_output"] == "prediction" and explanation["metadata"]["exact"]
        predictions = pd.read_csv(_download(store, run, "predictions.csv", tmp_path)).set_index("row")
        values = np.asarray(explanation["values"], dtype=float)
        total = explanation["base_value"] + values.sum(axis=1)
        assert np.max(np.abs(total - np.asarray(explanation["outputs"]))) <= 1e-6, name  # adds up
        expected = predictions.loc[explanation["row_ids"], "prediction"].to_numpy()
        # ... to the logged prediction (XGBoost and LightGBM predict in float32: relative 1e-6)
        assert np.max(np.abs(total - expected) / np.abs(expected)) <= 1e-6, name


def test_regression_best_version_is_the_lowest_rmse(diabetes) -> None:
    store, result = diabetes
    client = store.client()
    runs = _runs(store, "diabetes")
    best = min(runs.values(), key=lambda r: (r.data.metrics["rmse"], r.data.metrics["mae"]))
    versions = {v.run_id: str(v.version) for v in registry.list_versions(client, "diabetes-progression")}
    assert registry.aliases(client, "diabetes-progression") == {"staging": versions[best.info.run_id]}
    assert f"Best: {best.info.run_name} (version {versions[best.info.run_id]}) by rmse" in result.output
    assert "Selection:" not in result.output  # the shipped regression plan names rmse itself


def test_multiclass_runs_metrics_and_artifacts(wine, tmp_path: Path) -> None:
    store, result = wine
    runs = _runs(store, "wine")
    assert sorted(runs) == sorted(MULTICLASS_RUNS)
    client = store.client()
    for name, run in runs.items():
        assert run.info.status == "FINISHED" and run.data.tags[TASK_TAG] == "multiclass"
        listed = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert MULTICLASS_ARTIFACTS <= listed, (name, MULTICLASS_ARTIFACTS - listed)
        frame = pd.read_csv(_download(store, run, "predictions.csv", tmp_path))
        proba_columns = [f"probability_{label}" for label in WINE_CLASSES]
        assert list(frame.columns) == ["row", "y_true", *proba_columns, "y_pred"] and len(frame) == 36
        y, proba, y_pred = frame["y_true"].to_numpy(), frame[proba_columns].to_numpy(), frame["y_pred"].to_numpy()
        assert np.allclose(proba.sum(axis=1), 1.0)
        assert (y_pred == np.asarray(WINE_CLASSES)[proba.argmax(axis=1)]).all()
        expected = {
            "accuracy": skm.accuracy_score(y, y_pred), "balanced_accuracy": skm.balanced_accuracy_score(y, y_pred),
            "f1_macro": skm.f1_score(y, y_pred, average="macro"), "f1_weighted": skm.f1_score(y, y_pred, average="weighted"),
            "log_loss": skm.log_loss(y, proba, labels=WINE_CLASSES),
            "roc_auc": skm.roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=WINE_CLASSES),
        }
        precision = skm.precision_score(y, y_pred, labels=WINE_CLASSES, average=None, zero_division=0)
        recall = skm.recall_score(y, y_pred, labels=WINE_CLASSES, average=None, zero_division=0)
        for label, p, r in zip(WINE_CLASSES, precision, recall, strict=True):
            expected[f"precision_class_{label}"], expected[f"recall_class_{label}"] = p, r
        for metric, value in expected.items():
            assert abs(run.data.metrics[metric] - value) <= 1e-9, (name, metric)
            if not metric.startswith(("precision_", "recall_")):
                assert f"cv_{metric}_mean" in run.data.metrics and f"cv_{metric}_std" in run.data.metrics
        matrix = json.loads(_download(store, run, "confusion_matrix.json", tmp_path).read_text())
        assert matrix["labels"] == WINE_CLASSES
        assert matrix["counts"] == skm.confusion_matrix(y, y_pred, labels=WINE_CLASSES).tolist()
        assert np.allclose(np.asarray(matrix["normalized"]).sum(axis=1), 1.0)
        curves = json.loads(_download(store, run, "roc_curves.json", tmp_path).read_text())
        assert sorted(curves["classes"]) == WINE_CLASSES
        for label, points in curves["classes"].items():
            assert points["auc"] == pytest.approx(skm.roc_auc_score(y == label, frame[f"probability_{label}"]))
    assert "Multiclass classification: experiment 'wine' → model 'wine-cultivar'" in result.output


def test_multiclass_runs_log_one_explanation_per_class(wine, tmp_path: Path) -> None:
    store, _ = wine
    client = store.client()
    for name, run in _runs(store, "wine").items():
        assert "mlscope.explain_error" not in run.data.tags, name
        (tmp_path / name).mkdir()
        listed = {a.path.removeprefix("explanations/") for a in client.list_artifacts(run.info.run_id, "explanations")}
        assert {f"test-class-{label}.json" for label in WINE_CLASSES} <= listed, (name, listed)
        predictions = pd.read_csv(_download(store, run, "predictions.csv", tmp_path / name)).set_index("row")
        values = []
        for label in WINE_CLASSES:
            stored = json.loads(_download(store, run, f"explanations/test-class-{label}.json", tmp_path / name)
                                .read_text())
            output = stored["metadata"]["model_output"]
            outputs = np.asarray(stored["outputs"], dtype=float)
            if output == f"probability of class {label}":
                expected = predictions.loc[stored["row_ids"], f"probability_{label}"].to_numpy(dtype=float)
                assert np.max(np.abs(outputs - expected)) <= 1e-6, (name, label)  # the logged probabilities
            else:  # 13 features: a linear or boosted model is exact in its margin (the engine's rule)
                assert output == f"softmax logit of class {label}" and stored["metadata"]["exact"], (name, output)
            phi = np.asarray(stored["values"], dtype=float)
            assert np.max(np.abs(stored["base_value"] + phi.sum(axis=1) - outputs)) <= 1e-6  # adds up
            values.append(phi)
        if output.startswith("probability") and stored["metadata"]["exact"]:
            assert np.max(np.abs(sum(values))) <= 1e-6  # exact probabilities sum to 1: each feature's values to 0


def test_multiclass_demo_promotes_the_best_macro_f1(wine) -> None:
    store, _ = wine
    client = store.client()
    runs = _runs(store, "wine")
    versions = {v.run_id: int(v.version) for v in registry.list_versions(client, "wine-cultivar")}
    best = min(runs.values(), key=lambda r: (-r.data.metrics["f1_macro"], -r.data.metrics["accuracy"],
                                             versions[r.info.run_id]))
    aliases = registry.aliases(client, "wine-cultivar")
    assert aliases == {"staging": str(versions[best.info.run_id]), "production": str(versions[best.info.run_id])}
    xgboost = runs["xgboost"]
    assert xgboost.data.params["model_type"] == "xgboost" and xgboost.data.metrics["accuracy"] > 0.8


def test_multiclass_model_answers_in_the_dataset_labels(wine) -> None:
    import mlflow

    from mlscope.data.loader import load_wine
    from mlscope.tracking.client import allow_model_loading, bind_fluent_api
    from tests.conftest import mlflow_state_kept

    store, _ = wine
    client = store.client()
    data = load_wine()
    rows = data.X.head(3)
    with mlflow_state_kept():
        bind_fluent_api(store.settings())
        with allow_model_loading(store.settings()):
            for version in registry.list_versions(client, "wine-cultivar"):
                model = mlflow.sklearn.load_model(f"models:/wine-cultivar/{version.version}")
                assert list(model.classes_) == WINE_CLASSES
                assert set(model.predict(rows)) <= set(WINE_CLASSES)
                assert model.predict_proba(rows).shape == (3, 3)
                if version.tags["model_type"] in ("xgboost", "lightgbm"):  # the library is a requirement
                    from mlflow.artifacts import download_artifacts

                    folder = Path(download_artifacts(artifact_uri=version.source, tracking_uri=store.uri))
                    assert version.tags["model_type"] in (folder / "requirements.txt").read_text()


def _regression_csv(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 2))
    frame = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "group": ["a", "b"] * 40,
                          "price": 3 * x[:, 0] - x[:, 1] + rng.normal(scale=0.1, size=80) + 10})
    path = tmp_path / "houses.csv"
    frame.to_csv(path, index=False)
    return path


def test_default_selection_metric_falls_back_to_the_task_headline(store: Store, tmp_path: Path) -> None:
    plan = tmp_path / "plan.toml"  # no [selection]: roc_auc, which a regression run does not log
    plan.write_text('[[experiment]]\nname = "mean"\nestimator = "sklearn.dummy.DummyRegressor"\n'
                    '[[experiment]]\nname = "ridge"\nestimator = "sklearn.linear_model.Ridge"\n')
    result = invoke(store, "train", "--data", str(_regression_csv(tmp_path)), "--target", "price", "--slice", "group",
                    "--experiments", str(plan), "--experiment-name", "houses", "--model-name", "houses",
                    "--no-explain")
    assert result.exit_code == 0, result.output
    assert "roc_auc is not a regression metric: the best version is chosen by rmse (lower is better)" in result.output
    runs = _runs(store, "houses")
    assert runs["ridge"].data.metrics["rmse"] < runs["mean"].data.metrics["rmse"]
    assert {r.data.tags[TASK_TAG] for r in runs.values()} == {"regression"}
    assert "group_a_rmse" in runs["ridge"].data.metrics and "group_mean_residual_difference" in runs["ridge"].data.metrics
    client = store.client()
    versions = {v.run_id: str(v.version) for v in registry.list_versions(client, "houses")}
    assert registry.aliases(client, "houses") == {"staging": versions[runs["ridge"].info.run_id]}
    history = registry.alias_history(client, "houses")
    assert "best by rmse (lower is better)" in history[0].reason


def test_multiclass_csv_with_text_labels_and_slices(store: Store, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(90, 2))
    labels = np.where(x[:, 0] > 0.4, "high", np.where(x[:, 0] < -0.4, "low", "mid"))
    path = tmp_path / "grades.csv"
    pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "site": ["n", "s", "e"] * 30, "grade": labels}).to_csv(path, index=False)
    result = invoke(store, "train", "--data", str(path), "--target", "grade", "--slice", "site",
                    "--experiment-name", "grades", "--model-name", "grades", "--only", "logistic-regression")
    assert result.exit_code == 0, result.output
    run = _runs(store, "grades")["logistic-regression"]
    assert run.data.tags[TASK_TAG] == "multiclass"
    for group in ("site_n", "site_s", "site_e"):
        assert f"{group}_accuracy" in run.data.metrics and f"{group}_f1_macro" in run.data.metrics
    assert "site_accuracy_difference" in run.data.metrics and "site_f1_macro_difference" in run.data.metrics
    assert {"precision_class_high", "recall_class_low"} <= set(run.data.metrics)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--target", "label", "--task", "regression"], "target column 'label' is not numeric"),
        (["--target", "grade", "--task", "binary"], "has 3 classes, which is not a binary task"),
        (["--target", "grade", "--task", "sideways"], "unknown task 'sideways'"),
        (["--target", "price", "--experiments", "{plan}"],
         "experiment 'forest': sklearn.ensemble.RandomForestClassifier is not a regressor"),
    ],
)
def test_task_mismatches_are_one_line_errors(store: Store, tmp_path: Path, args: list[str], needle: str) -> None:
    rows = ["price,grade,label,x"] + [f"{i * 1.5 + 0.25},{i % 3},{'yn'[i % 2]},{i}" for i in range(40)]
    data = tmp_path / "d.csv"
    data.write_text("\n".join(rows))
    plan = tmp_path / "plan.toml"
    plan.write_text('[[experiment]]\nname = "forest"\nestimator = "sklearn.ensemble.RandomForestClassifier"\n')
    result = invoke(store, "train", "--data", str(data), *[a.replace("{plan}", str(plan)) for a in args])
    _one_line_error(result, needle)
    assert store.client().search_registered_models() == []


def test_a_classifier_in_the_regression_demo_plan_names_the_experiment(store: Store, tmp_path: Path) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text('[[experiment]]\nname = "ok"\nestimator = "sklearn.linear_model.Ridge"\n'
                    '[[experiment]]\nname = "wrong-kind"\nestimator = "sklearn.ensemble.RandomForestClassifier"\n')
    _one_line_error(invoke(store, "train", "--dataset", "diabetes", "--experiments", str(plan)),
                    "experiment 'wrong-kind'")
    _one_line_error(invoke(store, "train", "--dataset", "wine", "--experiments", str(plan)),
                    "experiment 'ok': sklearn.linear_model.Ridge is a regressor")


def test_a_multiclass_run_is_explained_one_class_at_a_time_by_the_cli(wine, tmp_path: Path) -> None:
    store, _ = wine
    run = _runs(store, "wine")["random-forest"]
    data = tmp_path / "wine.csv"
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame.drop(columns="target").head(12)
    frame.to_csv(data, index=False)
    refused = invoke(store, "explain", run.info.run_id, "--data", str(data))
    _one_line_error(refused, "the model is multiclass: it is explained one class at a time; add --class (one of "
                             "class_0, class_1, class_2)")
    _one_line_error(invoke(store, "explain", run.info.run_id, "--data", str(data), "--class", "merlot"),
                    "unknown class 'merlot'; the model's classes are class_0, class_1, class_2")
    explained = invoke(store, "explain", run.info.run_id, "--data", str(data), "--class", "class_2", "--row", "0")
    assert explained.exit_code == 0, explained.output
    assert "Row 0: P(class class_2) = " in explained.output
    assert "exact Shapley values of the probability of class class_2" in explained.output
    from mlscope.tracking.client import allow_model_loading

    with allow_model_loading(store.settings(trust_registry_models=True)):
        import mlflow

        mlflow.set_tracking_uri(store.uri)
        model = mlflow.sklearn.load_model(f"runs:/{run.info.run_id}/model")
    logged = invoke(store, "explain", run.info.run_id, "--class", "class_1")  # training logged every class
    assert logged.exit_code == 0, logged.output
    assert "(cached artifact)" in logged.output and "probability of class class_1" in logged.output
    from mlscope.explain.service import stored_explanation

    # the user's 12 rows are kept beside the training's per-class explanation, never in its place
    kept = stored_explanation(store.client(), run.info.run_id, "test-class-class_2")[0]
    assert len(kept.row_ids) == len(stored_explanation(store.client(), run.info.run_id, "test-class-class_0")[0].row_ids)
    assert len(kept.row_ids) != 12
    shown = float(explained.output.split("P(class class_2) = ")[1].split()[0])
    assert shown == pytest.approx(model.predict_proba(frame.head(1))[0, 2], abs=1e-4)


def test_the_dashboard_api_explains_a_multiclass_run_per_class(wine) -> None:
    from fastapi.testclient import TestClient

    from mlscope.web.app import create_app
    from tests.conftest import mlflow_state_kept

    store, _ = wine
    run = _runs(store, "wine")["logistic-regression"]
    with mlflow_state_kept():
        http = TestClient(create_app(store.settings()))
        view = http.get(f"/api/runs/{run.info.run_id}/explanation").json()
        picked = http.get(f"/api/runs/{run.info.run_id}/explanation", params={"class": "class_1"}).json()
        unknown = http.get(f"/api/runs/{run.info.run_id}/explanation", params={"class": "merlot"})
        what_if = http.post(f"/api/runs/{run.info.run_id}/explanation/what-if", params={"class": "class_1"},
                            json={"record": {}})
        pressed = http.post(f"/api/runs/{run.info.run_id}/explanation")
    assert view["available"] is True and view["classes"] == WINE_CLASSES and view["output_class"] == "class_0"
    from mlscope.explain.service import stored_explanation

    per_class = [stored_explanation(store.client(), run.info.run_id, f"test-class-{label}")[0] for label in WINE_CLASSES]
    summed = sum(np.abs(e.values) for e in per_class).mean(axis=0)
    features = per_class[0].features
    shown = {item["feature"]: item["mean_abs_shap"] for item in view["global_all_classes"] if not item["other"]}
    assert shown and all(abs(value - summed[features.index(name)]) <= 1e-12 for name, value in shown.items())
    assert sum(item["mean_abs_shap"] for item in view["global_all_classes"]) == pytest.approx(summed.sum(), abs=1e-9)
    assert picked["global_all_classes"] == view["global_all_classes"]  # the same, whichever class is picked
    assert view["metadata"]["model_output"].endswith("of class class_0")
    assert picked["output_class"] == "class_1" and picked["positive_label"] == "class class_1"
    assert picked["metadata"]["model_output"].endswith("of class class_1")
    assert unknown.status_code == 422 and unknown.json()["error"]["field"] == "class"
    assert unknown.json()["error"]["message"] == ("unknown class 'merlot'; the run's explained classes are "
                                                  "class_0, class_1, class_2")
    assert what_if.status_code == 200 and what_if.json()["metadata"]["model_output"].endswith("of class class_1")
    # the test explanation (binary-style) is not computed for a multiclass model: it says why
    assert pressed.status_code == 422 and "one class at a time" in pressed.json()["error"]["message"]


def test_a_multiclass_row_is_explained_for_its_predicted_class_by_default(wine) -> None:
    from fastapi.testclient import TestClient

    from mlscope.explain.service import stored_explanation
    from mlscope.web.app import create_app
    from tests.conftest import mlflow_state_kept

    store, _ = wine
    run_id = _runs(store, "wine")["random-forest"].info.run_id
    per_class = {label: stored_explanation(store.client(), run_id, f"test-class-{label}")[0] for label in WINE_CLASSES}
    outputs = np.column_stack([per_class[label].outputs for label in WINE_CLASSES])
    predicted = outputs.argmax(axis=1)
    assert len(set(predicted.tolist())) > 1  # rows predicted as different classes: the default moves with the row
    with mlflow_state_kept():
        http = TestClient(create_app(store.settings()))
        for position in np.unique(predicted, return_index=True)[1]:
            row_id = per_class["class_0"].row_ids[position]
            default = http.get(f"/api/runs/{run_id}/explanation/rows/{row_id}").json()
            label = WINE_CLASSES[predicted[position]]
            assert default["output_class"] == label
            assert default["probabilities"] == pytest.approx(dict(zip(WINE_CLASSES, outputs[position])), abs=1e-12)
            assert default["probability"] == pytest.approx(outputs[position].max(), abs=1e-12)
            assert sum(default["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
            other = WINE_CLASSES[(predicted[position] + 1) % 3]
            chosen = http.get(f"/api/runs/{run_id}/explanation/rows/{row_id}", params={"class": other}).json()
            assert chosen["output_class"] == other
            assert chosen["probability"] == pytest.approx(default["probabilities"][other], abs=1e-12)
            assert chosen["waterfall"] != default["waterfall"]


def test_the_runs_command_shows_the_regression_metrics_best_by_rmse(diabetes) -> None:
    store, _ = diabetes
    result = invoke(store, "runs", "--experiment", "diabetes")
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if "rmse" in line and "run" in line)
    assert [word for word in ("rmse", "mae", "r2", "mape", "max_error") if word in header] == \
        ["rmse", "mae", "r2", "mape", "max_error"] and "roc_auc" not in header
    best = min(_runs(store, "diabetes").values(), key=lambda run: run.data.metrics["rmse"])
    assert f"★ best by rmse" in result.output and "(lower is better): " + best.info.run_name in result.output
