"""Conformance suites and the pytest plugin for taskq and its integrations."""
