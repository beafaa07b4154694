"""Scenario files: schema with file:line:field errors, and the runner."""
