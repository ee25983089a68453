"""Learning: task recipes, networks, the one trainer, evaluation."""
