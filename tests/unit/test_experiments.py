from __future__ import annotations

from pathlib import Path

import pytest

from mlscope.errors import BadInput
from mlscope.training.experiments import default_experiments_path, load_plan

PRODUCT_PARAMS = {
    "rf-baseline": dict(n_estimators=100, max_depth=None, min_samples_split=2, min_samples_leaf=1, random_state=42),
    "rf-tuned": dict(n_estimators=200, max_depth=10, min_samples_split=5, min_samples_leaf=2, random_state=42),
    "logistic-regression": dict(penalty="l2", C=1.0, solver="lbfgs", max_iter=1000, random_state=42),
    "svm": dict(kernel="rbf", C=1.0, gamma="scale", probability=True, random_state=42),
}


def test_shipped_plan_has_the_four_seed_experiments_exactly() -> None:
    plan = load_plan()
    selected = plan.select()
    assert [s.name for s in selected] == list(PRODUCT_PARAMS)
    for spec in selected:
        params = spec.build().get_params()
        for key, value in PRODUCT_PARAMS[spec.name].items():
            assert params[key] == value, (spec.name, key)
    assert plan.selection.metric == "roc_auc" and plan.selection.direction == "max"
    assert plan.selection.tie_breaker == "accuracy"
    assert (plan.split.test_size, plan.split.random_state, plan.split.cv_folds) == (0.2, 42, 5)


def test_optional_fifth_is_off_until_enabled() -> None:
    plan = load_plan()
    assert "hist-gradient-boosting" not in [s.name for s in plan.select()]
    enabled = plan.select(enable=["hist-gradient-boosting"])
    assert [s.name for s in enabled][-1] == "hist-gradient-boosting"
    assert [s.name for s in plan.select(only=["svm"])] == ["svm"]
    with pytest.raises(BadInput, match="no experiment named 'nope'"):
        plan.select(only=["nope"])


def _plan(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "exp.toml"
    path.write_text(body)
    return path


def test_adding_an_experiment_needs_no_code(tmp_path: Path) -> None:
    text = default_experiments_path().read_text() + """
[[experiment]]
name = "extra-trees"
estimator = "sklearn.ensemble.ExtraTreesClassifier"
params = { n_estimators = 50, random_state = 0 }
"""
    plan = load_plan(_plan(tmp_path, text))
    extra = plan.select(only=["extra-trees"])[0]
    assert extra.model_type == "extra_trees_classifier"
    assert extra.build().n_estimators == 50


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[[experiment]]\nname = "x"\nestimator = "sklearn.ensemble.NoSuchForest"\n', "unknown model class"),
        ('[[experiment]]\nname = "x"\nestimator = "nosuchpackage.Model"\n', "unknown model class"),
        ('[[experiment]]\nname = "x"\nestimator = "RandomForest"\n', "full import path"),
        ('[[experiment]]\nname = "x"\nestimator = "sklearn.svm.SVC"\n', "predict_proba"),
        ('[[experiment]]\nname = "x"\nestimator = "sklearn.linear_model.LinearRegression"\n', "predict_proba"),
        ('[[experiment]]\nname = "x"\nestimator = "sklearn.svm.SVC"\nparams = { colour = 1 }\n', "bad parameters"),
        ('[[experiment]]\nname = "bad name!"\nestimator = "sklearn.svm.SVC"\n', "'name' must be"),
        ('[[experiment]]\nname = "x"\nestimator = "sklearn.svm.SVC"\nextra = 1\n', "unknown key"),
        ("[selection]\nmetric = 'roc_auc'\n", "declares no [[experiment]]"),
        ("this is = not toml [", "not valid TOML"),
        ('[[experiment]]\nname = "x"\nestimator = "sklearn.naive_bayes.GaussianNB"\n'
         '[[experiment]]\nname = "x"\nestimator = "sklearn.naive_bayes.GaussianNB"\n', "duplicate experiment"),
        ('[selection]\ndirection = "up"\n[[experiment]]\nname = "x"\nestimator = "sklearn.naive_bayes.GaussianNB"\n',
         "direction must be"),
    ],
)
def test_bad_plans_are_one_line_errors(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(BadInput) as info:
        load_plan(_plan(tmp_path, body))
    assert message in info.value.message
    assert "\n" not in info.value.message


def test_missing_plan_file(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="experiments file not found"):
        load_plan(tmp_path / "none.toml")
