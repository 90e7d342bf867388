"""Stage 2, preference pairs: disagreements between agents -> chosen/rejected.

Also holds prompt rendering (instruction rewrite, chat template), which
training and evaluation share so that a model is scored on prompts formatted
exactly as it was trained on. Imports `riskdpo.core` and `riskdpo.data` only
(`riskdpo.data.answers`, the answer reader, checks that reasoning ends in the
pair's option).
"""
