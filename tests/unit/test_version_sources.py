"""How version sources name a logged model or a run (mlscope.tracking.version_links)."""

from __future__ import annotations

from mlscope.tracking.version_links import copied_from, source_model_id, source_run_id


def test_source_uris_are_read_strictly() -> None:
    run, model = "0123456789abcdef0123456789abcdef", "m-0123456789abcdef0123456789abcdef"
    assert source_model_id(f"models:/{model}") == model
    assert source_model_id(f"mlflow-artifacts:/4/models/{model}/artifacts") == model
    assert source_model_id(f"s3://bucket/4/models/{model}/artifacts/") == model
    assert source_model_id("models:/churn/3") is None and source_model_id("models:/churn@champion") is None
    assert source_run_id(f"runs:/{run}/model") == run
    assert source_run_id(f"mlflow-artifacts:/4/{run}/artifacts/model") == run
    assert source_run_id(f"file:///data/4/{run}/artifacts") == run
    assert source_run_id(f"/data/4/{run}x/artifacts/model") is None
    assert source_run_id(f"s3://bucket/models/{model}/artifacts") is None
    assert source_run_id("/tmp/x") is None and source_run_id("runs:/") is None


def test_copied_versions_are_models_uris_with_a_number() -> None:
    assert copied_from("models:/churn/3") == ("churn", "3")
    assert copied_from("models:/my%20model/12") == ("my model", "12")
    assert copied_from("models:/churn@champion") is None and copied_from("models:/churn/latest") is None
    assert copied_from("models:/m-0123456789abcdef0123456789abcdef") is None and copied_from("runs:/a/b") is None
