"""Experiment scripts (plain scripts; importable for the tests)."""
