"""Stage 3, training: the DPO loss, the loop and its run directory contract.

`config` (TrainConfig, the one source of every setting) -> `pair_data` (pairs
read, tokenized, batched) -> `steps` (micro-batches, accumulation, optimizer)
and `policy` (which weights train, the saved model) -> `run` (`train(config)`:
the loops and run.json); `run_dir` (lock, --overwrite, resume checks, SIGTERM),
`preflight` (options checked against the model), `checkpoint`, `metrics`,
`loss`, `lora`.

Imports `riskdpo.core`, `riskdpo.pairs` (prompt rendering) and `riskdpo.models`.
"""
