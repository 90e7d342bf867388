"""Figures and tables from a run's metrics.jsonl and from eval reports, for
`riskdpo report`, readable without W&B. Imports `riskdpo.core` and, for the
eval-report figure, `riskdpo.evaluation.figure`.
"""
