"""meddx: AI-assisted medical diagnosis.

The package follows the system's five parts:

- :mod:`meddx.data` -- data in: readers, dataset catalog, DICOM, de-identification.
- :mod:`meddx.learn` -- learning: task recipes, networks, the trainer, evaluation.
- :mod:`meddx.decision` -- decision support: model bundles, prediction, explanation, uncertainty.
- :mod:`meddx.workstation` -- the clinician workstation: server, database, web UI, feedback.
- :mod:`meddx.safeguards` -- auth, audit, privacy.
"""

__version__ = "0.1.0"

_API = {"train", "evaluate", "predict", "fetch", "list_datasets", "load_bundle", "load_dataset",
        "load_model"}


def __getattr__(name: str):
    # Imported lazily: `import meddx` stays fast and torch loads only when a model is needed.
    if name in _API:
        from meddx import api

        return getattr(api, name)
    raise AttributeError(f"module 'meddx' has no attribute {name!r}")
