"""Safeguards: authentication, audit, privacy."""
