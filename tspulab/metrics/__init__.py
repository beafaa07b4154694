"""Probe results, derived metrics and the report."""
