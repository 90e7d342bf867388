"""Stage 3, training: the DPO loss, the loop and its run directory contract.

Imports `riskdpo.core`, `riskdpo.pairs` (prompt rendering) and `riskdpo.models`.
"""
