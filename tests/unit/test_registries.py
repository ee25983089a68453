"""Every recipe, reader and predictor registration resolves: a new task cannot half-register."""

import importlib

from meddx.data import catalog
from meddx.data.loading import PATH_READERS, READERS_BY_KIND, _resolve
from meddx.decision.predictors import PREDICTORS, predictor_class
from meddx.learn.pipeline import RECIPES


def test_every_recipe_has_a_registered_predictor():
    for module in set(RECIPES.values()):
        recipe = importlib.import_module(module)
        assert callable(recipe.fit)
        assert recipe.TASK_NAME in PREDICTORS, module


def test_every_predictor_resolves_with_the_predictor_interface():
    for task in PREDICTORS:
        cls = predictor_class(task)
        for method in ("from_bundle", "predict_split", "predict_file"):
            assert callable(getattr(cls, method)), (task, method)
    assert predictor_class("no-such-task") is None


def test_every_reader_resolves_and_catalog_kinds_are_readable():
    for target in READERS_BY_KIND.values():
        assert callable(_resolve(target))
    for test, reader in PATH_READERS:
        assert callable(_resolve(test)) and callable(_resolve(reader))
    kinds = {spec.kind for spec in catalog.CATALOG.values()}
    # Datasets kept for future tasks (molecules, raw DICOM samples) have no trainable reader yet.
    assert kinds - set(READERS_BY_KIND) <= {"dicom"}, kinds - set(READERS_BY_KIND)
