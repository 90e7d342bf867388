"""Foundations every stage uses: the one user-error type and atomic file io.

Imports nothing else of riskdpo; everything else may import it.
"""
