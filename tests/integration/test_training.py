"""The four built-in experiments, trained once into a real temporary MLflow store."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from mlscope.data.loader import load_titanic
from mlscope.tracking import registry
from mlscope.tracking.client import allow_model_loading, bind_fluent_api
from mlscope.training.fitting import METRICS

pytestmark = pytest.mark.slow

RUNS = ["rf-baseline", "rf-tuned", "logistic-regression", "svm"]
ARTIFACTS = {
    "confusion_matrix.png", "feature_importance.png", "feature_importance.json", "roc_curve.png", "roc_curve.json",
    "classification_report.txt", "classification_report.json", "predictions.csv", "cv_folds.json", "fairness.json",
}


@pytest.fixture(scope="module")
def runs(trained):
    store, _ = trained
    client = store.client()
    experiment = client.get_experiment_by_name("titanic")
    found = client.search_runs([experiment.experiment_id])
    return store, client, {run.info.run_name: run for run in found}


def test_four_finished_runs(runs) -> None:
    _, _, by_name = runs
    assert sorted(by_name) == sorted(RUNS)
    assert {run.info.status for run in by_name.values()} == {"FINISHED"}


def test_test_metrics_are_in_the_product_ranges(runs) -> None:
    _, _, by_name = runs
    for name, run in by_name.items():
        metrics = run.data.metrics
        assert set(METRICS) <= set(metrics), name
        assert 0.79 <= metrics["accuracy"] <= 0.84, (name, metrics["accuracy"])
        assert 0.77 <= metrics["precision"] <= 0.85, (name, metrics["precision"])
        assert 0.62 <= metrics["recall"] <= 0.74, (name, metrics["recall"])
        assert 0.80 <= metrics["roc_auc"] <= 0.90, (name, metrics["roc_auc"])


def test_cross_validation_folds_and_summary(runs) -> None:
    _, client, by_name = runs
    for run in by_name.values():
        for metric in METRICS:
            history = client.get_metric_history(run.info.run_id, f"cv_{metric}")
            assert sorted(m.step for m in history) == [0, 1, 2, 3, 4]
            values = [m.value for m in sorted(history, key=lambda m: m.step)]
            mean = sum(values) / 5
            assert run.data.metrics[f"cv_{metric}_mean"] == pytest.approx(mean)
            assert f"cv_{metric}_std" in run.data.metrics


def test_fairness_slices_per_sex_and_class(runs) -> None:
    _, _, by_name = runs
    for run in by_name.values():
        metrics = run.data.metrics
        for group in ("sex_female", "sex_male", "pclass_1", "pclass_2", "pclass_3"):
            for name in ("accuracy", "precision", "recall", "f1", "selection_rate"):
                assert f"{group}_{name}" in metrics
        for column in ("sex", "pclass"):
            assert 0 <= metrics[f"{column}_demographic_parity_difference"] <= 1
            assert 0 <= metrics[f"{column}_equalized_odds_difference"] <= 1


def test_params_record_every_hyperparameter_and_the_data(runs) -> None:
    _, _, by_name = runs
    params = by_name["rf-baseline"].data.params
    assert params["n_estimators"] == "100" and params["max_depth"] == "None"
    assert params["min_samples_split"] == "2" and params["min_samples_leaf"] == "1"
    assert params["criterion"] == "gini"  # defaults are logged too: every hyperparameter
    assert params["model_type"] == "random_forest"
    assert params["train_rows"] == "712" and params["test_rows"] == "179"
    assert params["split_seed"] == "42" and params["cv_folds"] == "5" and params["cv_seed"] == "42"
    assert params["dataset"] == "titanic" and params["dataset_digest"] == load_titanic().digest
    svm = by_name["svm"].data.params
    assert svm["kernel"] == "rbf" and svm["probability"] == "True" and svm["gamma"] == "scale"
    lr = by_name["logistic-regression"].data.params
    assert lr["solver"] == "lbfgs" and lr["max_iter"] == "1000" and lr["C"] == "1.0"


def test_tags_and_dataset_input(runs) -> None:
    _, client, by_name = runs
    run = by_name["svm"]
    tags = run.data.tags
    assert tags["mlscope.dataset"] == "titanic"
    assert tags["mlscope.task"] == "binary"
    assert tags["mlscope.version"]
    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 1 and inputs[0].dataset.name == "titanic"
    assert inputs[0].dataset.digest == load_titanic().digest


def test_every_artifact_is_logged_and_readable(runs, tmp_path: Path) -> None:
    _, client, by_name = runs
    for name, run in by_name.items():
        listed = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert ARTIFACTS <= listed, (name, ARTIFACTS - listed)
    run = by_name["rf-tuned"]
    folder = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path)))
    predictions = pd.read_csv(folder / "predictions.csv")
    assert list(predictions.columns) == ["PassengerId", "y_true", "probability", "y_pred"]
    assert len(predictions) == 179 and predictions["PassengerId"].is_unique
    roc = json.loads((folder / "roc_curve.json").read_text())
    assert roc["auc"] == pytest.approx(run.data.metrics["roc_auc"])
    report = json.loads((folder / "classification_report.json").read_text())
    assert report["accuracy"] == pytest.approx(run.data.metrics["accuracy"])
    importance = json.loads((folder / "feature_importance.json").read_text())
    assert importance["kind"] == "impurity"
    assert set(importance["values"]) == set(load_titanic().features)  # one value per raw feature
    assert (folder / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    folds = json.loads((folder / "cv_folds.json").read_text())
    assert folds["folds"] == 5 and len(folds["values"]["roc_auc"]) == 5


def test_importance_kind_follows_the_model(runs, tmp_path: Path) -> None:
    _, client, by_name = runs
    kinds = {}
    for name in ("logistic-regression", "svm"):
        path = client.download_artifacts(by_name[name].info.run_id, "feature_importance.json", str(tmp_path))
        kinds[name] = json.loads(Path(path).read_text())["kind"]
    assert kinds == {"logistic-regression": "abs_coefficient", "svm": "permutation"}


def test_registry_versions_tags_and_aliases(runs) -> None:
    store, client, by_name = runs
    versions = registry.list_versions(client, "titanic-survival")
    assert [str(v.version) for v in versions] == ["1", "2", "3", "4"]
    assert {v.run_id for v in versions} == {r.info.run_id for r in by_name.values()}
    for version in versions:
        run = client.get_run(version.run_id)
        assert version.tags["run_name"] == run.info.run_name
        assert version.tags["model_type"] == run.data.params["model_type"]
        assert float(version.tags["metric.roc_auc"]) == pytest.approx(run.data.metrics["roc_auc"])
    best = max(by_name.values(), key=lambda r: (r.data.metrics["roc_auc"], r.data.metrics["accuracy"]))
    best_version = next(str(v.version) for v in versions if v.run_id == best.info.run_id)
    assert registry.aliases(client, "titanic-survival") == {"staging": best_version, "production": best_version}
    history = registry.alias_history(client, "titanic-survival")
    assert [(e.alias, e.action, e.version) for e in history] == [("staging", "set", best_version),
                                                                 ("production", "set", best_version)]
    assert all(e.by == "tester (mlscope train)" and "best by roc_auc" in e.reason for e in history)


def test_registered_model_takes_raw_records_with_missing_values(runs) -> None:
    store, _, _ = runs
    settings = store.settings()
    records = pd.DataFrame([
        {"Pclass": 3.0, "Sex": "male", "Age": 22.0, "SibSp": 1.0, "Parch": 0.0, "Fare": 7.25, "Embarked": "S"},
        {"Pclass": 1.0, "Sex": "female", "Age": 28.0, "SibSp": 0.0, "Parch": 0.0, "Fare": 100.0, "Embarked": None},
        {"Pclass": 2.0, "Sex": None, "Age": None, "SibSp": None, "Parch": None, "Fare": None, "Embarked": None},
    ])
    bind_fluent_api(settings)
    with allow_model_loading(settings):
        model = mlflow.pyfunc.load_model("models:/titanic-survival@production")
        proba = model.predict(records)
        signature = model.metadata.signature
    assert proba.shape == (3, 2)
    assert proba[0, 1] < 0.5 < proba[1, 1]  # the PRODUCT.md passengers
    assert signature.inputs.input_names() == load_titanic().features
    assert signature.inputs.input_dict()["Age"].required is False


def test_summary_table_marks_the_best(trained) -> None:
    _, result = trained
    out = result.output
    assert "★" in out and "Best:" in out
    for name in RUNS:
        assert name in out
    assert "Alias staging → version" in out and "Alias production → version" in out


def test_registered_model_loads_without_mlscope_installed(runs, tmp_path: Path) -> None:
    """The helper inside the pipeline is pickled by value: plain MLflow users need no mlscope."""
    import subprocess
    import sys

    store, client, by_name = runs
    version = registry.get_version(client, "titanic-survival", registry.aliases(client, "titanic-survival")["production"])
    from mlflow.artifacts import download_artifacts

    folder = Path(download_artifacts(artifact_uri=version.source, dst_path=str(tmp_path),
                                     tracking_uri=store.uri))
    script = f"""
import sys
sys.path = [p for p in sys.path if not p.endswith('/src')]
sys.meta_path = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]
try:
    import mlscope
    raise SystemExit('mlscope is importable: the check proves nothing')
except ImportError:
    pass
import cloudpickle, pandas as pd
model = cloudpickle.load(open({str(folder / 'model.pkl')!r}, 'rb'))
row = pd.DataFrame([{{'Pclass': 1.0, 'Sex': 'female', 'Age': None, 'SibSp': 0.0, 'Parch': 0.0, 'Fare': 100.0,
                     'Embarked': None}}])
print(model.predict_proba(row)[0, 1])
assert 'mlscope' not in sys.modules
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert 0.5 < float(out.stdout.strip()) <= 1.0
