"""Registry rules against a real store: the best-version rule, alias moves and their audit trail."""

from __future__ import annotations

import pytest
from sklearn.naive_bayes import GaussianNB

import mlflow
from mlscope.errors import BadInput, NotFound
from mlscope.tracking import registry
from mlscope.tracking.client import bind_fluent_api
from mlscope.training.experiments import SelectionRule
from tests.conftest import Store


def _version(store: Store, metrics: dict[str, float]) -> str:
    client = store.client()
    bind_fluent_api(store.settings())
    with mlflow.start_run(experiment_id=store.experiment("registry-tests")) as run:
        mlflow.log_metrics(metrics)
        info = mlflow.sklearn.log_model(GaussianNB().fit([[0.0], [1.0]], [0, 1]), name="model",
                                        pip_requirements=["scikit-learn"], serialization_format="cloudpickle")
    version = registry.register_version(client, "m", info.model_uri, run.info.run_id,
                                        registry.version_tags("nb", "r", metrics))
    return str(version.version)


def test_best_version_rule_direction_and_tie_breaker(store: Store) -> None:
    client = store.client()
    _version(store, {"roc_auc": 0.80, "accuracy": 0.70, "log_loss": 0.5})
    v2 = _version(store, {"roc_auc": 0.85, "accuracy": 0.70, "log_loss": 0.6})
    v3 = _version(store, {"roc_auc": 0.85, "accuracy": 0.75, "log_loss": 0.4})
    assert str(registry.best_version(client, "m", SelectionRule())[0].version) == v3
    assert str(registry.best_version(client, "m", SelectionRule("log_loss", "min"))[0].version) == v3
    assert str(registry.best_version(client, "m", SelectionRule("accuracy", "max", "roc_auc"))[0].version) == v3
    # Equal on both: the oldest version wins, so aliases do not move needlessly.
    _version(store, {"roc_auc": 0.85, "accuracy": 0.75})
    assert str(registry.best_version(client, "m", SelectionRule())[0].version) == v3
    assert str(registry.best_version(client, "m", SelectionRule("roc_auc", "max", ""))[0].version) == v2
    assert registry.best_version(client, "m", SelectionRule("nonexistent")) is None


def test_set_move_remove_alias_with_audit(store: Store) -> None:
    client = store.client()
    v1, v2 = _version(store, {"roc_auc": 0.8}), _version(store, {"roc_auc": 0.9})
    first = registry.set_alias(client, "m", "production", v1, by="ana", reason="first")
    moved = registry.set_alias(client, "m", "production", v2, by="ben", reason="better AUC")
    removed = registry.remove_alias(client, "m", "production", by="cy", reason="incident")
    assert (first.action, first.previous_version) == ("set", None)
    assert (moved.action, moved.previous_version, moved.version) == ("move", v1, v2)
    assert (removed.action, removed.version) == ("remove", v2)
    assert registry.aliases(client, "m") == {}
    history = registry.alias_history(client, "m")
    assert [(e.action, e.by, e.reason) for e in history] == [("set", "ana", "first"), ("move", "ben", "better AUC"),
                                                             ("remove", "cy", "incident")]
    assert history[0].at < history[1].at < history[2].at


def test_alias_errors(store: Store) -> None:
    client = store.client()
    v1 = _version(store, {"roc_auc": 0.8})
    with pytest.raises(NotFound, match="has no version 7"):
        registry.set_alias(client, "m", "production", "7", by="x", reason="")
    with pytest.raises(NotFound, match="registered model 'other' not found"):
        registry.set_alias(client, "other", "production", "1", by="x", reason="")
    with pytest.raises(BadInput, match="cannot set alias"):
        registry.set_alias(client, "m", "latest", v1, by="x", reason="")
    with pytest.raises(NotFound, match="has no alias 'staging'"):
        registry.remove_alias(client, "m", "staging", by="x", reason="")
    assert registry.alias_history(client, "m") == []
