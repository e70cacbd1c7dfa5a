"""The training reference: logged by real `mlscope train` runs of each task, loaded back by run id (and
from the cache), equal to the logged model's outputs on its rows; rebuilt for runs trained elsewhere from
their stored explanation; a clear reason when there is nothing to build it from."""

from __future__ import annotations

import json
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlscope import task as tasks
from mlscope.explain import artifacts
from mlscope.explain.service import explain_run, load_model
from mlscope.monitoring import drift
from mlscope.monitoring.reference import FOLDER, META, PARQUET, NoReference, Reference, load_reference
from mlscope.tracking.client import bind_fluent_api
from tests.conftest import Store, invoke, mlflow_state_kept

pytestmark = pytest.mark.slow


def _grades_csv(folder: Path) -> Path:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(90, 2))
    labels = np.where(x[:, 0] > 0.4, "high", np.where(x[:, 0] < -0.4, "low", "mid"))
    path = folder / "grades.csv"
    pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "site": ["n", "s", "e"] * 30, "grade": labels}).to_csv(path, index=False)
    return path


TRAININGS = {
    "binary": (["train", "--only", "logistic-regression"], "titanic",
               {"Pclass": "numeric", "Sex": "categorical", "Age": "numeric", "SibSp": "numeric", "Parch": "numeric",
                "Fare": "numeric", "Embarked": "categorical"}),
    "regression": (["train", "--dataset", "diabetes", "--only", "ridge"], "diabetes", None),
    "multiclass": (["train", "--data", "{grades}", "--target", "grade", "--experiment-name", "grades",
                    "--model-name", "grades", "--only", "logistic-regression"], "grades",
                   {"x1": "numeric", "x2": "numeric", "site": "categorical"}),
}


@pytest.fixture(scope="module", params=list(TRAININGS))
def trained_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, str, str]:
    name = request.param
    root = tmp_path_factory.mktemp(name)
    store = Store(root)
    args, experiment, _ = TRAININGS[name]
    result = invoke(store, *[a.replace("{grades}", str(_grades_csv(root))) for a in args])
    assert result.exit_code == 0, result.output
    client = store.client()
    [run] = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return store, run.info.run_id, name


def _inputs(reference: Reference) -> pd.DataFrame:
    """The reference rows as the model takes them (numbers as float, categories as text with NaN)."""
    frame = {}
    for feature, kind in reference.features.items():
        column = reference.frame[f"in.{feature}"]
        frame[feature] = column.astype(float) if kind == "numeric" else column.astype(object).where(column.notna(),
                                                                                                    np.nan)
    return pd.DataFrame(frame)


def test_training_logs_a_reference_that_loads_back_and_matches_the_model(trained_run, tmp_path: Path) -> None:
    store, run_id, name = trained_run
    client = store.client()
    run = client.get_run(run_id)
    assert {f"{FOLDER}/{PARQUET}", f"{FOLDER}/{META}"} <= {a.path for a in client.list_artifacts(run_id, FOLDER)}
    reference = load_reference(client, run_id, tmp_path / "cache")
    task = tasks.get(run.data.tags[tasks.TASK_TAG])
    assert reference.source == "training" and reference.task == task.name
    assert reference.rows == int(run.data.params["train_rows"])  # fewer than 5,000: every training row
    expected_features = TRAININGS[name][2] or {f: "numeric" for f in run.data.params["features"].split(",")}
    assert reference.features == expected_features
    assert list(reference.frame.columns[:len(expected_features)]) == [f"in.{f}" for f in expected_features]

    model = load_model(store.settings(), run_id)
    outputs, classes = task.outputs(model, _inputs(reference))
    if not task.classification:
        np.testing.assert_allclose(reference.frame["output"], outputs, rtol=1e-12)
        assert "label" not in reference.frame and reference.prediction_column == ("output", "numeric")
    elif len(classes) == 2:
        np.testing.assert_allclose(reference.frame["output"], outputs[:, 1], rtol=1e-12)
        assert reference.frame["label"].tolist() == ["1" if p > 0.5 else "0" for p in outputs[:, 1]]
        assert reference.prediction_column == ("output", "numeric")
    else:
        labels = [str(c) for c in classes]
        for i, label in enumerate(labels):
            np.testing.assert_allclose(reference.frame[f"p.{label}"], outputs[:, i], rtol=1e-12)
        assert reference.frame["label"].tolist() == [labels[i] for i in outputs.argmax(axis=1)]
        np.testing.assert_allclose(reference.frame["output"], outputs.max(axis=1), rtol=1e-12)
        assert reference.classes == labels and reference.prediction_column == ("label", "categorical")


def test_the_reference_carries_the_test_explanations_mean_abs_shap(trained_run, tmp_path: Path) -> None:
    store, run_id, _ = trained_run
    client = store.client()
    reference = load_reference(client, run_id, tmp_path / "cache")
    names = sorted(a.path for a in client.list_artifacts(run_id, artifacts.FOLDER) if a.path.endswith(".json"))
    explained = [json.loads(Path(client.download_artifacts(run_id, n, str(tmp_path))).read_text()) for n in names]
    summed = sum(np.abs(np.asarray(e["values"])) for e in explained).mean(axis=0)
    assert reference.mean_abs_shap == pytest.approx(dict(zip(explained[0]["features"], summed, strict=True)),
                                                    rel=1e-12)
    if len(explained) > 1:  # multiclass: per class too, keyed by label
        per_class = reference.meta["mean_abs_shap_per_class"]
        assert sorted(per_class) == sorted(reference.classes)


def test_a_loaded_reference_is_served_from_the_cache(trained_run, tmp_path: Path) -> None:
    store, run_id, _ = trained_run
    first = load_reference(store.client(), run_id, tmp_path / "cache")
    assert (tmp_path / "cache" / run_id / PARQUET).is_file()
    gone = Store(tmp_path / "empty").client()  # a store without the run: only the cache can answer
    again = load_reference(gone, run_id, tmp_path / "cache")
    pd.testing.assert_frame_equal(first.frame, again.frame)
    assert again.meta == first.meta
    with pytest.raises(NoReference, match=f"run '{run_id}' not found"):
        load_reference(gone, run_id, tmp_path / "other-cache")


def test_its_own_rows_logged_as_predictions_do_not_drift(trained_run, tmp_path: Path) -> None:
    store, run_id, _ = trained_run
    reference = load_reference(store.client(), run_id, tmp_path / "cache")
    now = datetime(2026, 12, 4, 12, tzinfo=timezone.utc)
    table = pa.Table.from_pandas(reference.frame, preserve_index=False)
    rows = table.num_rows
    table = table.append_column("ts", pa.array([now] * rows, type=pa.timestamp("ms", tz="UTC")))
    table = table.append_column("model_version", pa.array(["1"] * rows))
    day = tmp_path / "log" / "predictions" / "model=m" / "date=2026-12-04"
    day.mkdir(parents=True)
    pq.write_table(table, day / "part-1-1-0.parquet")
    result = drift.window_drift(tmp_path / "log", "m", "1", now - timedelta(hours=1), now + timedelta(hours=1),
                                reference)
    assert result.rows == reference.rows and result.status == "ok"
    for feature in [*result.features, result.prediction]:
        assert feature.psi == pytest.approx(0.0, abs=1e-12) and feature.p_value == pytest.approx(1.0)


# ---- runs trained elsewhere ------------------------------------------------------------------------------

def _foreign_run(store: Store, estimator: object, frame: pd.DataFrame, y: np.ndarray) -> str:
    with mlflow_state_kept(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bind_fluent_api(store.settings())
        with mlflow.start_run(experiment_id=store.experiment("elsewhere")) as run:
            estimator.fit(frame, y)
            mlflow.sklearn.log_model(estimator, name="model", serialization_format="cloudpickle")
    return run.info.run_id


def test_a_foreign_classifier_gets_its_reference_from_its_stored_explanation(store: Store, tmp_path: Path) -> None:
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    y = (frame["a"] + rng.normal(scale=0.5, size=60) > 0).astype(int).to_numpy()
    model = RandomForestClassifier(n_estimators=20, max_depth=3, random_state=0)
    run_id = _foreign_run(store, model, frame, y)
    with pytest.raises(NoReference, match=r"no stored test explanation .*\(mlscope explain"):
        load_reference(store.client(), run_id, tmp_path / "cache")

    with mlflow_state_kept():
        explain_run(store.settings(), run_id, data=frame)  # logs explanations/test.json
    reference = load_reference(store.client(), run_id, tmp_path / "cache")
    assert reference.source == "explanation" and reference.rows == 60
    assert reference.features == {"a": "numeric", "b": "numeric"} and reference.task is None  # no metrics, no tag
    np.testing.assert_allclose(reference.frame["in.a"], frame["a"])
    np.testing.assert_allclose(reference.frame["output"], model.predict_proba(frame)[:, 1], rtol=1e-9)
    assert reference.prediction_column == ("output", "numeric") and reference.mean_abs_shap is not None
    assert not (tmp_path / "cache" / run_id / "explanations").exists()
    assert {a.path for a in store.client().list_artifacts(run_id)} == {"explanations"}  # nothing written to the run


def test_a_foreign_regressor_gets_its_predictions_as_reference_outputs(store: Store, tmp_path: Path) -> None:
    from sklearn.tree import DecisionTreeRegressor

    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40)})
    y = 3 * frame["a"].to_numpy() + rng.normal(size=40)
    model = DecisionTreeRegressor(max_depth=3, random_state=0)
    run_id = _foreign_run(store, model, frame, y)
    with mlflow_state_kept():
        explain_run(store.settings(), run_id, data=frame)
    reference = load_reference(store.client(), run_id, tmp_path / "cache")
    np.testing.assert_allclose(reference.frame["output"], model.predict(frame), rtol=1e-9)
    assert reference.prediction_column == ("output", "numeric") and "label" not in reference.frame
