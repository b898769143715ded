"""Benchmarks that print figures, each against a baseline measured in the same run.

``python -m bench`` runs them all; ``python -m bench.<name>`` runs one.
"""
