"""Helpers shared by the tests (not tests themselves): processes, configs, generated tables."""
