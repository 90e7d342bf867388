"""Recipes that compose the stages: on-policy pairs (sample a model's own
answers, grade them, pair right against wrong) and the iterative rounds built
on them (sample -> pair -> train -> evaluate, `iterate`).

Sits above training and evaluation and may import any stage; no stage imports it.
"""
