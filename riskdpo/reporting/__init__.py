"""Figures and tables from a run's metrics.jsonl and from eval reports,
readable without W&B. Imports `riskdpo.core` only.
"""
