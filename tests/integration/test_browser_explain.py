"""The explain view in a real browser (Debian's Chromium through Playwright), served over real HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from scipy.stats import spearmanr
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from mlscope.data.loader import titanic_path
from mlscope.explain.service import stored_explanation
from mlscope.tracking.client import allow_model_loading, bind_fluent_api
from mlscope.web.app import create_app
from tests.conftest import copy_of
from tests.live import console_errors, live_app, screenshot

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def site(trained) -> Iterator[str]:
    store, _ = trained
    with live_app(create_app(store.settings())) as url:
        yield url


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1500, "height": 900})
    yield context.new_page()
    context.close()


@pytest.fixture(scope="module")
def run_ids(trained) -> dict[str, str]:
    store, _ = trained
    client = store.client()
    experiment = client.get_experiment_by_name("titanic")
    return {r.info.run_name: r.info.run_id for r in client.search_runs([experiment.experiment_id])}


def text_changes(page: Any, selector: str, before: str) -> None:
    page.wait_for_function("([s, b]) => document.querySelector(s).textContent !== b", arg=[selector, before])


def probability_of(model: Any, record: dict[str, Any]) -> float:
    frame = pd.DataFrame([record])
    for column in ("Pclass", "Age", "SibSp", "Parch", "Fare"):
        frame[column] = frame[column].astype("float64")
    for column in ("Sex", "Embarked"):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), np.nan)
    return float(model.predict_proba(frame)[0, list(model.classes_).index(1)])


def test_explain_view_charts_search_and_what_if(trained, run_ids, site: str, page: Any) -> None:
    store, _ = trained
    errors = console_errors(page)
    run_id = run_ids["rf-tuned"]
    explanation, _ = stored_explanation(store.client(), run_id)
    other, _ = stored_explanation(store.client(), run_ids["svm"])
    page.goto(f"{site}/runs/{run_id}/explain?versus={run_ids['svm']}&model=titanic-survival&version=2")
    for name in ("importance", "beeswarm", "dependence", "waterfall", "compare"):
        page.wait_for_selector(f"[data-chart={name}] .main-svg")
    assert page.inner_text("h1").startswith("Explain rf-tuned") and "model titanic-survival v2" in page.inner_text("h1")
    meta = page.inner_text("[data-meta]")
    assert "exact Shapley values" in meta and "background 100 rows (seed 42)" in meta and "179 rows" in meta
    assert page.locator("[data-chart=importance] .point").count() == 7
    assert page.locator("[data-chart=beeswarm] .point").count() == 179 * 7
    # A small model is shown whole: no "other" entry, no search boxes, one flat what-if form, "exact".
    bars = page.evaluate("() => document.querySelector('[data-chart=importance]').data[0].y")
    assert sorted(bars) == sorted(explanation.features)
    assert "exact values" in page.inner_text("[data-importance-note]")
    assert page.is_hidden("[data-dependence-filter]") and page.is_hidden("[data-what-if-filter]")
    assert page.locator("details[data-more-features]").count() == 0
    fields = page.eval_on_selector_all("form[data-what-if] > label[data-field]", "ls => ls.map((l) => l.dataset.field)")
    assert fields == explanation.features
    page.wait_for_function("() => document.querySelector('[data-agreement]').textContent.includes('Spearman')")
    rho = spearmanr(np.abs(explanation.values).mean(axis=0), np.abs(other.values).mean(axis=0)).statistic
    assert f"Spearman {rho:.2f}" in page.inner_text("[data-agreement]")

    # Search a passenger by part of the name and pick them: the stored waterfall and probability show.
    titanic = pd.read_csv(titanic_path()).set_index("PassengerId")
    position = 42
    row_id = explanation.row_ids[position]
    name = titanic.loc[row_id, "Name"]
    fragment = max(re.findall(r"[A-Za-z]{4,}", name), key=len)[:6].lower()
    page.fill("[data-passenger-search]", fragment)
    page.click(f"[data-passenger-results] button[data-row-id='{row_id}']")
    page.wait_for_function("(n) => document.querySelector('[data-passenger]').textContent.includes(n)", arg=name)
    expected = f"P(survived) = {explanation.outputs[position]:.3f}"
    page.wait_for_function("(t) => document.querySelector('[data-probability]').textContent === t", arg=expected)
    assert page.locator("[data-chart=waterfall] .point").count() == 7 + 2  # base, 7 features, total
    assert "exact Shapley values" in page.inner_text("[data-waterfall-note]")
    record = {f: (None if pd.isna(v) else (v if isinstance(v, str) else float(v)))
              for f, v in explanation.data.iloc[position].items()}
    assert page.input_value("select[data-feature=Sex]") == record["Sex"]

    # What-if: each change is explained live; the shown probability is the model's own.
    bind_fluent_api(store.settings())
    with allow_model_loading(store.settings()):
        model = mlflow.sklearn.load_model(f"runs:/{run_id}/model")
    record["Sex"] = "female" if record["Sex"] == "male" else "male"
    page.select_option("select[data-feature=Sex]", record["Sex"])
    text_changes(page, "[data-probability]", expected)
    assert page.inner_text("[data-probability]") == f"P(survived) = {probability_of(model, record):.3f}"
    before = page.inner_text("[data-probability]")
    record["Pclass"] = 1.0 if record["Pclass"] != 1.0 else 3.0
    page.fill("input[data-feature=Pclass]", str(int(record["Pclass"])))
    text_changes(page, "[data-probability]", before)
    assert page.inner_text("[data-probability]") == f"P(survived) = {probability_of(model, record):.3f}"
    assert "edited" in page.inner_text("[data-waterfall-note]")

    # The dependence plot follows the picker.
    page.select_option("select[data-dependence-feature]", "Age")
    page.wait_for_function("() => document.querySelector('[data-chart=dependence] .xtitle').textContent === 'Age'")
    screenshot(page, "explain")
    assert errors == []


def test_computing_a_missing_explanation_from_the_view(trained, tmp_path: Path, page: Any) -> None:
    source, _ = trained
    store = copy_of(source, tmp_path / "plain")
    titanic = pd.read_csv(titanic_path())
    features = ["Pclass", "Sex", "Age", "Fare"]
    pipeline = Pipeline([
        ("prepare", ColumnTransformer([("numbers", SimpleImputer(), ["Pclass", "Age", "Fare"]),
                                       ("text", OneHotEncoder(handle_unknown="ignore"), ["Sex"])])),
        ("model", LogisticRegression(max_iter=1000)),
    ]).fit(titanic[features], titanic["Survived"])
    bind_fluent_api(store.settings())
    experiment_id = store.client().create_experiment("plain", artifact_location=(tmp_path / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment_id, run_name="plain-logreg") as run:
        signature = infer_signature(titanic[features], pipeline.predict_proba(titanic[features]))
        mlflow.sklearn.log_model(pipeline, name="model", serialization_format="cloudpickle", signature=signature,
                                 pip_requirements=["scikit-learn"])
    errors = console_errors(page)
    page.on("dialog", lambda dialog: dialog.accept("s3cret"))  # the token prompt of a protected action
    with live_app(create_app(store.settings(token="s3cret"))) as url:
        page.goto(f"{url}/runs/{run.info.run_id}/explain")
        page.wait_for_selector("[data-missing]:not([hidden]) [data-compute]:not([hidden])")
        assert "no explanation is stored" in page.inner_text("[data-missing]")
        assert page.is_hidden("[data-explained]")
        page.click("[data-compute]")
        page.wait_for_selector("[data-explained]:not([hidden]) [data-chart=importance] .main-svg", timeout=60000)
        assert page.is_hidden("[data-missing]")
        assert "shipped Titanic data" in page.inner_text("[data-meta]")
        assert page.locator("[data-chart=importance] .point").count() == 4
    assert stored_explanation(store.client(), run.info.run_id) is not None
    assert errors == [] or all("401" in e for e in errors)  # the first, token-less attempt
