"""Stage 4, evaluation: which option a model picks, read or scored, and the
statistics (Wilson and paired intervals, McNemar, implied CARA alpha) that
turn choices into a publishable rate.

Imports `riskdpo.core`, `riskdpo.data`, `riskdpo.pairs` (prompt rendering) and
`riskdpo.models`; never `riskdpo.training`.
"""
