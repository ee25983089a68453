"""Evaluation: metrics with confidence intervals, and reports with plots."""
