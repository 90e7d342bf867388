"""Foundations every stage uses: the one user-error type, atomic file io, SIGTERM as Ctrl-C.

Imports nothing else of riskdpo; everything else may import it.
"""
