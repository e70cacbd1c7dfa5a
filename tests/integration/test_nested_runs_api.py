"""Nested runs through the JSON API: the top level and each run's children as pages (sorted among siblings),
child counts, the best run over all runs (children included) and the rows that contain it."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from mlflow.entities import ViewType

from mlscope.web.app import create_app
from tests.conftest import Store
from tests.user_runs import AUTOLOG, NESTED, AutologRuns

pytestmark = pytest.mark.slow

ROC_DESC = "metrics.roc_auc DESC"


@pytest.fixture(scope="module")
def http(user_logged: tuple[Store, AutologRuns]) -> TestClient:
    store, _ = user_logged
    return TestClient(create_app(store.settings()))


@pytest.fixture(scope="module")
def ids(user_logged: tuple[Store, AutologRuns]) -> dict[str, str]:
    """Run ids of the nested experiment by name, deleted runs included."""
    store, _ = user_logged
    client = store.client()
    experiment_id = client.get_experiment_by_name(NESTED).experiment_id
    return {run.info.run_name: run.info.run_id
            for run in client.search_runs([experiment_id], run_view_type=ViewType.ALL)}


def page(http: TestClient, **params: Any) -> dict[str, Any]:
    response = http.get("/api/runs/page", params={"experiment": NESTED, "order_by": ROC_DESC, **params})
    assert response.status_code == 200, response.text
    return response.json()


def names(body: dict[str, Any]) -> list[str]:
    return [run["name"] for run in body["runs"]]


def test_the_top_level_sorts_parents_by_their_own_values_with_children_collapsed(http: TestClient,
                                                                                 ids: dict[str, str]) -> None:
    """Failed before: `tree` was ignored (all eight runs, no child counts, no best path)."""
    body = page(http, tree="true")
    assert body["tree"] is True and body["total"] == 4
    assert names(body) == ["ensemble", "sweep", "baseline", "orphan"]  # the orphan's parent is deleted
    assert {run["name"]: run["children"] for run in body["runs"]} == {"ensemble": 0, "sweep": 3, "baseline": 0,
                                                                      "orphan": 0}
    assert body["best_run_id"] == ids["trial-2"] and body["best_reason"] == "best by roc_auc, 0.91"
    assert body["best_path"] == [ids["sweep"]]  # the best run is a collapsed child of the sweep
    assert [run["name"] for run in body["runs"] if run["contains_best"]] == ["sweep"]
    assert not any(run["is_best"] for run in body["runs"])
    assert {run["name"]: run["parent_run_id"] for run in body["runs"]}["orphan"] == ids["doomed"]
    ascending = page(http, tree="true", order_by="metrics.roc_auc ASC")
    assert names(ascending) == ["orphan", "baseline", "sweep", "ensemble"]
    second = page(http, tree="true", offset=2, limit=2)
    assert names(second) == ["baseline", "orphan"] and second["total"] == 4


def test_children_are_their_own_sorted_level_recursively(http: TestClient, ids: dict[str, str]) -> None:
    children = page(http, parent=ids["sweep"])
    assert children["tree"] is True and children["parent"] == ids["sweep"] and children["total"] == 3
    assert names(children) == ["trial-2", "trial-3", "trial-1"]
    assert [run["name"] for run in children["runs"] if run["is_best"]] == ["trial-2"]
    assert {run["name"]: run["children"] for run in children["runs"]} == {"trial-2": 0, "trial-3": 1, "trial-1": 0}
    assert {run["parent_run_id"] for run in children["runs"]} == {ids["sweep"]}
    assert names(page(http, parent=ids["sweep"], order_by="metrics.roc_auc ASC")) == ["trial-1", "trial-3", "trial-2"]
    grandchildren = page(http, parent=ids["trial-3"])
    assert names(grandchildren) == ["trial-3-refit"] and grandchildren["runs"][0]["children"] == 0
    assert page(http, parent=ids["doomed"])["total"] == 1  # a deleted parent's children can still be listed
    unknown = page(http, parent="0" * 32)
    assert unknown["total"] == 0 and unknown["runs"] == []


def test_the_flat_list_is_every_run_with_its_parent(http: TestClient, ids: dict[str, str]) -> None:
    flat = page(http)
    assert flat["tree"] is False and flat["total"] == 8
    assert names(flat)[:3] == ["trial-2", "ensemble", "trial-3"]
    assert all(run["children"] is None for run in flat["runs"])
    parents = {run["name"]: run["parent_run_id"] for run in flat["runs"]}
    assert parents["trial-3-refit"] == ids["trial-3"] and parents["baseline"] is None
    assert [run["name"] for run in flat["runs"] if run["is_best"]] == ["trial-2"]
    listing = http.get("/api/runs", params={"experiment": NESTED}).json()
    assert {run["name"]: run["parent_run_id"] for run in listing["runs"]} == parents


def test_a_filter_applies_within_the_level_and_to_the_counts(http: TestClient, ids: dict[str, str]) -> None:
    body = page(http, tree="true", filter="metrics.roc_auc > 0.81")
    assert names(body) == ["ensemble", "sweep"]
    assert {run["name"]: run["children"] for run in body["runs"]} == {"ensemble": 0, "sweep": 2}
    assert names(page(http, parent=ids["sweep"], filter="metrics.roc_auc > 0.81")) == ["trial-2", "trial-3"]


def test_a_grid_search_autologs_its_candidates_as_children(http: TestClient, user_logged) -> None:
    _, autolog = user_logged
    top = http.get("/api/runs/page", params={"experiment": AUTOLOG, "tree": "true"}).json()
    assert top["total"] == 4 and {run["name"]: run["children"] for run in top["runs"]} == {
        "logistic": 0, "forest": 0, "boosting": 0, "grid": 3}
    assert top["best_path"] == []  # by default (training_roc_auc) the best run is top level
    by_cv = http.get("/api/runs/page", params={"experiment": AUTOLOG, "tree": "true",
                                               "metric": "mean_test_score"}).json()
    assert by_cv["best_run_id"] in autolog.grid_children and by_cv["best_path"] == [autolog.runs["grid"]]
    assert [run["name"] for run in by_cv["runs"] if run["contains_best"]] == ["grid"]
    candidates = http.get("/api/runs/page", params={"experiment": AUTOLOG, "parent": autolog.runs["grid"],
                                                    "order_by": "metrics.mean_test_score DESC"}).json()
    assert sorted(run["run_id"] for run in candidates["runs"]) == sorted(autolog.grid_children)
    scores = [run["metrics"]["mean_test_score"] for run in candidates["runs"]]
    assert scores == sorted(scores, reverse=True) and candidates["runs"][0]["run_id"] == by_cv["best_run_id"]
