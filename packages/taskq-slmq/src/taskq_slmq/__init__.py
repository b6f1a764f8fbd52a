"""Slmq support for taskq.

taskq never imports this package by name: pyproject.toml registers each class under the URL
scheme it serves, in the `taskq.transports` and `taskq.backends` entry-point groups, and taskq
loads it when a broker or result URL with that scheme is used.
"""
