"""Stage 1, the data: spreadsheets of choice situations read, checked, generated.

Situations, their labels and lotteries, the reader of a model's free-text answer
against a situation's labels (`answers.py`), the exact expected-utility arithmetic
that verifies a sheet's labels, and fresh sheets with exact labels. Knows
nothing of torch or of models; imports only `riskdpo.core`.
"""
