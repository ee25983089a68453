"""The second opinion for S beats (``EcgPlan.second_opinion``): its plan and its per-record gate."""

from __future__ import annotations

import numpy as np
import pytest

from meddx.data.ecg import load_wfdb_dataset
from meddx.errors import ConfigError
from meddx.learn.tasks import ecg as recipe
from tests.ecg_helpers import write_folder

N, S, V = 0, 1, 2


def test_gate_lets_the_second_opinion_speak_only_where_it_calls_many_more_s_beats():
    records = np.array(["a"] * 10 + ["b"] * 10 + ["c"] * 10)
    first = np.array([N] * 9 + [S] + [N] * 10 + [V] + [N] * 9)
    second = first.copy()
    second[[0, 1]] = S         # a: 2 more of 10 beats S (gap 0.2): both become S
    second[10] = S             # b: 1 more of 10 (gap 0.1 < 0.15): the first's calls stay
    second[[20, 21, 22]] = S   # c: gap 0.3, but beat 20 is the first's V call: V stays
    calls = recipe.second_opinion_calls(first, second, records, S, N, min_gap=0.15)
    expected = first.copy()
    expected[[0, 1, 21, 22]] = S
    np.testing.assert_array_equal(calls, expected)
    np.testing.assert_array_equal(first[[0, 1]], [N, N])  # the caller's calls are not touched
    # The first opinion's own S calls never go: the second opinion only adds S calls.
    fewer = np.full(30, N)
    np.testing.assert_array_equal(
        recipe.second_opinion_calls(first, fewer, records, S, N, min_gap=0.05), first)
    # The gap is measured against the share the first opinion already calls S (a: 0.3 - 0.1),
    # in beats, so that a gap of exactly min_gap counts.
    np.testing.assert_array_equal(
        recipe.second_opinion_calls(first, second, records, S, N, min_gap=0.2), expected)
    only_c = first.copy()
    only_c[[21, 22]] = S
    np.testing.assert_array_equal(
        recipe.second_opinion_calls(first, second, records, S, N, min_gap=0.21), only_c)
    np.testing.assert_array_equal(
        recipe.second_opinion_calls(first, second, records, S, N, min_gap=0.31), first)
    # gate_shut: records where the gate opens (a, c) keep the gated calls; b, shut, takes
    # shut_calls (there the margin's), whose S call at 19 went.
    margin_calls = first.copy()
    margin_calls[[9, 19]] = N
    with_shut = recipe.second_opinion_calls(first, second, records, S, N, min_gap=0.15,
                                            shut_calls=margin_calls)
    np.testing.assert_array_equal(with_shut, np.where(records == "b", margin_calls, expected))
    np.testing.assert_array_equal(
        recipe.second_opinion_opens(first, second, records, S, min_gap=0.15), records != "b")
    # margin_calls (E39, E40): the gate is read on first and second as above (a and c open),
    # then applied in every record to both opinions' calls with the margin, which took a's own
    # S call (9) and three of the second opinion's (1, 9, 22).
    first_with = first.copy()
    first_with[9] = N
    second_with = second.copy()
    second_with[[1, 9, 22]] = N
    applied = recipe.second_opinion_calls(first, second, records, S, N, min_gap=0.15,
                                          margin_calls=(first_with, second_with))
    expected_applied = first_with.copy()
    expected_applied[[0, 21]] = S  # b stays shut: its second-opinion S call (10) is not taken
    np.testing.assert_array_equal(applied, expected_applied)
    np.testing.assert_array_equal(first_with[[0, 21]], [N, N])  # the inputs are not touched


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = write_folder(tmp_path_factory.mktemp("second-opinion"), n_records=3, duration_s=20)
    return load_wfdb_dataset(folder, progress=False)


def test_default_beat_plan_asks_a_second_opinion_of_a_model_anchored_on_regular_beats(dataset):
    plan = recipe.make_plan(dataset)
    assert plan.model == recipe.COMBINED and plan.second_opinion == recipe.SECOND_OPINION
    assert plan.second_opinion is not recipe.SECOND_OPINION  # a copy: plans do not share it
    second = recipe.second_opinion_plan(plan)
    assert second.beat_config == {**plan.beat_config, "anchor_beats": "not_premature"}
    assert second.second_opinion is None
    # The default decides with the irregular-rhythm S margin where the gate stays shut (E36);
    # the gate reads calls without it, so the second model has none.
    assert (plan.irregular_s_margin, plan.irregular_s_margin_scope) == (
        recipe.IRREGULAR_S_MARGIN, "gate_shut")
    assert (second.irregular_s_margin, second.irregular_s_margin_scope) == (1.0, "all_records")
    # Everything else is the first model's plan.
    own = ("beat_config", "second_opinion", "irregular_s_margin", "irregular_s_margin_scope")
    rest = {k: v for k, v in plan.to_dict().items() if k not in own}
    assert {k: v for k, v in second.to_dict().items() if k in rest} == rest
    for kind in recipe.COMPONENTS:  # the members are one model each, without a second opinion
        assert recipe.component_plan(plan, kind).second_opinion is None
    # A model already anchored so, other kinds, and bundles written before have none.
    anchored = recipe.make_plan(dataset, {"beat": {"anchor_beats": "not_premature"}})
    assert anchored.second_opinion is None
    assert recipe.make_plan(dataset, {"model": "lightgbm"}).second_opinion is None
    alone = recipe.make_plan(dataset, {"second_opinion": None})
    assert alone.second_opinion is None and alone.irregular_s_margin == 1.0  # no gate: no margin
    assert recipe.make_plan(dataset, {"irregular_s_margin": 2}).irregular_s_margin_scope == (
        "gate_shut")
    everywhere = recipe.make_plan(dataset, {"irregular_s_margin_scope": "all_records"})
    assert everywhere.irregular_s_margin == recipe.IRREGULAR_S_MARGIN
    legacy = {k: v for k, v in plan.to_dict().items() if k != "second_opinion"}
    assert recipe.EcgPlan.from_dict(legacy).second_opinion is None


@pytest.mark.parametrize(("option", "message"), [
    ({"beat": {"anchor_beats": "not_premature"}}, "min_gap must be a share"),
    ({"beat": {"anchor_beats": "not_premature"}, "min_gap": 0}, "min_gap must be a share"),
    ({"beat": {"anchor_beats": "not_premature"}, "min_gap": True}, "min_gap must be a share"),
    ({"beat": {"feature_set": "rr"}, "min_gap": 0.05}, "second_opinion.beat must set"),
    ({"beat": {}, "min_gap": 0.05}, "second_opinion.beat must set"),
    ({"beat": {"anchor_beats": "sometimes"}, "min_gap": 0.05}, "anchor_beats must be one of"),
    ({"beat": {"anchor_beats": "all"}, "min_gap": 0.05}, "changes nothing"),
    ({"beat": {"anchor_beats": "not_premature"}, "min_gap": 0.05, "odds": 2},
     "second_opinion must be null or"),
    ("yes", "second_opinion must be null or"),
])
def test_bad_second_opinion_is_refused_before_any_fit(dataset, option, message):
    with pytest.raises(ConfigError, match=message):
        recipe.make_plan(dataset, {"second_opinion": option})


def test_second_opinion_needs_the_combined_beat_model(dataset):
    with pytest.raises(ConfigError, match="second_opinion needs a cnn\\+lightgbm beat model"):
        recipe.make_plan(dataset, {"model": "lightgbm", "second_opinion": recipe.SECOND_OPINION})
