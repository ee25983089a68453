"""Decision support: model bundles, prediction, explanation, uncertainty."""
