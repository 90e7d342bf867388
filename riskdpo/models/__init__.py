"""Models shared by training and evaluation: loading (hub id, local directory
or the bundled SmolLM2), the tiny test model, and completion log-probabilities.

Imports `riskdpo.core` only.
"""
