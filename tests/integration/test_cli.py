"""The CLI as a user meets it: CliRunner against real temporary MLflow stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlscope.tracking import registry
from tests.conftest import Store, invoke

pytestmark = pytest.mark.slow


def _assert_nothing_logged(store: Store) -> None:
    client = store.client()
    experiment = client.get_experiment_by_name("titanic")
    assert experiment is None or client.search_runs([experiment.experiment_id]) == []
    assert client.search_registered_models() == []


def _one_line_error(result: object, needle: str) -> None:
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error:") and needle in lines[0], result.output


@pytest.mark.parametrize(
    ("files", "args", "needle"),
    [
        ({"bad.csv": "a,b\n1,2\n"}, ["--data", "{tmp}/bad.csv", "--target", "y"], "target column 'y' not in"),
        ({"bad.csv": "a,y\n" + "\n".join(f"{i},{i % 3}" for i in range(30))},
         ["--data", "{tmp}/bad.csv", "--target", "y", "--task", "binary"], "has 3 classes, which is not a binary task"),
        ({}, ["--data", "{tmp}/missing.csv", "--target", "y"], "data file not found"),
        ({"x.csv": "a,y\n1,0\n"}, ["--data", "{tmp}/x.csv"], "--target is required"),
        ({"e.toml": '[[experiment]]\nname = "x"\nestimator = "sklearn.ensemble.Nope"\n'},
         ["--experiments", "{tmp}/e.toml"], "unknown model class 'sklearn.ensemble.Nope'"),
        ({}, ["--only", "no-such-experiment"], "no experiment named 'no-such-experiment'"),
        ({}, ["--target", "Survived"], "need --data or --kaggle"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_logs_nothing(store: Store, tmp_path: Path, files: dict[str, str],
                                                          args: list[str], needle: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    result = invoke(store, "train", *[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.exit_code == 2, result.output
    _one_line_error(result, needle)
    _assert_nothing_logged(store)


def test_failing_experiment_is_marked_failed_and_the_others_run(store: Store, tmp_path: Path) -> None:
    toml = tmp_path / "exp.toml"
    toml.write_text(
        '[[experiment]]\nname = "broken"\nestimator = "sklearn.linear_model.LogisticRegression"\n'
        "params = { C = -1.0 }\n"
        '[[experiment]]\nname = "fine"\nestimator = "sklearn.naive_bayes.GaussianNB"\n'
    )
    result = invoke(store, "train", "--experiments", str(toml))
    assert result.exit_code == 1
    assert "failed: broken:" in result.output and "Traceback" not in result.output
    client = store.client()
    runs = {r.info.run_name: r for r in client.search_runs([client.get_experiment_by_name("titanic").experiment_id])}
    assert runs["broken"].info.status == "FAILED"
    assert "C" in runs["broken"].data.tags["mlscope.error"]
    assert runs["fine"].info.status == "FINISHED"
    assert [str(v.version) for v in registry.list_versions(client, "titanic-survival")] == ["1"]
    assert registry.aliases(client, "titanic-survival") == {"staging": "1"}


def test_any_csv_trains_and_registers(store: Store, tmp_path: Path) -> None:
    rows = ["id,colour,size,weight,label"]
    rows += [f"{i},{['red', 'blue', 'green'][i % 3]},{(i * 7) % 11},{(i * 13) % 17 / 3},{int((i * 7) % 11 > 5)}"
             for i in range(120)]
    data = tmp_path / "toy.csv"
    data.write_text("\n".join(rows))
    result = invoke(store, "train", "--data", str(data), "--target", "label", "--id-column", "id",
                    "--slice", "colour", "--only", "logistic-regression", "--experiment-name", "toy",
                    "--model-name", "toy-model", "--no-explain")
    assert result.exit_code == 0, result.output
    client = store.client()
    run = client.search_runs([client.get_experiment_by_name("toy").experiment_id])[0]
    assert run.data.params["features"] == "colour,size,weight"
    assert "colour_red_accuracy" in run.data.metrics
    assert registry.aliases(client, "toy-model") == {"staging": "1"}
    assert client.list_artifacts(run.info.run_id, "explanations") == []  # --no-explain


def test_runs_lists_every_run_with_the_best_marked(trained) -> None:
    store, _ = trained
    listing = invoke(store, "runs")
    assert listing.exit_code == 0
    assert "4 run(s) of experiment 'titanic'" in listing.output
    assert "★ best by roc_auc" in listing.output and "@production" in listing.output
    by_loss = invoke(store, "runs", "--metric", "log_loss")
    assert "lower is better" in by_loss.output


def test_runs_filter_takes_or_and_in(trained) -> None:
    store, _ = trained
    either = invoke(store, "runs", "--filter", "params.model_type = 'svm' or params.model_type = 'logistic_regression'")
    assert either.exit_code == 0, either.output
    assert "2 run(s) of experiment 'titanic'" in either.output
    assert "svm" in either.output and "logistic-regression" in either.output and "rf-" not in either.output
    forests = invoke(store, "runs", "--filter", "params.model_type IN ('random_forest') AND NOT params.max_depth = 'None'")
    assert forests.exit_code == 0, forests.output
    assert "1 run(s)" in forests.output and "rf-tuned" in forests.output


def test_promote_and_history(store: Store) -> None:
    trained = invoke(store, "train", "--only", "logistic-regression", "--only", "svm", "--promote")
    assert trained.exit_code == 0, trained.output

    client = store.client()
    before = registry.aliases(client, "titanic-survival")["production"]
    target = "1" if before != "1" else "2"
    promoted = invoke(store, "promote", "titanic-survival", target, "--alias", "production",
                      "--reason", "rollback drill")
    assert promoted.exit_code == 0, promoted.output
    assert f"was version {before}" in promoted.output
    assert registry.aliases(client, "titanic-survival")["production"] == target
    event = registry.alias_history(client, "titanic-survival")[-1]
    assert (event.alias, event.action, event.previous_version, event.version) == ("production", "move", before, target)
    assert (event.by, event.reason) == ("tester", "rollback drill")
    tags = client.get_model_version("titanic-survival", target).tags
    assert any(k.startswith("mlscope.audit.production.") for k in tags)

    shown = invoke(store, "history", "titanic-survival")
    assert shown.exit_code == 0 and "rollback drill" in shown.output and "mlscope train" in shown.output


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["promote", "no-such-model", "1"], 1, "registered model 'no-such-model' not found"),
        (["promote", "titanic-survival", "99"], 1, "has no version 99"),
        (["promote", "titanic-survival", "one"], 2, "version must be a number"),
        (["promote", "titanic-survival", "1", "--alias", "latest"], 2, "cannot set alias 'latest'"),
        (["runs", "--experiment", "nope"], 1, "experiment 'nope' not found"),
        (["runs", "--filter", "metrics.accuracy >>> 1"], 2, "bad filter"),
        (["runs", "--filter", "metrics.accuracy > 0.5 OR (metrics.f1 > 0.5"], 2,
         "unbalanced parenthesis: '(' at position 27 is never closed"),
        (["runs", "--filter", "params.model_type IN ()"], 2, "empty IN list at position 22"),
        (["runs", "--direction", "sideways"], 2, "--direction must be"),
        (["history", "no-such-model"], 1, "registered model 'no-such-model' not found"),
    ],
)
def test_cli_errors_are_one_line(trained, args: list[str], code: int, needle: str) -> None:
    store, _ = trained
    result = invoke(store, *args)
    assert result.exit_code == code, result.output
    _one_line_error(result, needle)


def test_demo_trains_once_then_reuses(store: Store) -> None:
    first = invoke(store, "demo", "--no-serve")
    assert first.exit_code == 0, first.output
    client = store.client()
    assert "production" in registry.aliases(client, "titanic-survival")
    second = invoke(store, "demo", "--no-serve")
    assert second.exit_code == 0 and "skipping training" in second.output
    assert len(client.search_runs([client.get_experiment_by_name("titanic").experiment_id])) == 4


def test_version_and_tracking_uri_option(tmp_path: Path) -> None:
    store = Store(tmp_path)
    assert "mlscope 0.1.0" in invoke(store, "--version").output
    other = tmp_path / "other.db"
    result = invoke(store, "--tracking-uri", f"sqlite:///{other}", "runs")
    assert result.exit_code == 1 and "experiment 'titanic' not found" in result.output
    assert other.exists()
