"""`riskdpo report`: PNG figures of a training run and of evaluations."""

from __future__ import annotations

import click


@click.command("report")
@click.argument("output_dir", type=click.Path(file_okay=False))
@click.option("--eval", "eval_reports", multiple=True, type=click.Path(dir_okay=False), help="An eval-choices report .json; repeat in order (before, after) to compare.")
@click.option("-o", "--out-dir", type=click.Path(file_okay=False), default=None, help="Folder for the figures [default: OUTPUT_DIR/figures].")
def report(output_dir: str, eval_reports: tuple[str, ...], out_dir: str | None) -> None:
    """Plot a training run's curves, and evaluations before and after.

    Reads OUTPUT_DIR/metrics.jsonl (and run.json for beta) and writes loss,
    reward accuracy, reward margins and reward-vs-divergence PNGs, train and
    validation on the same axes; with --eval, the risk-averse rate of every
    model with its 95% interval, overall and per stratum, and each report that
    scored OUTPUT_DIR/final-model is added to its README.md model card. Prints
    the paths and the last logged metrics.

    \b
    Example:
      riskdpo report results-risk-averse --eval before.json --eval after.json
    """
    from riskdpo.core.fileio import check_output, read_json
    from riskdpo.training.model_card import record_evaluation
    from riskdpo.reporting.figures import metrics_table, write_report
    from riskdpo.training.run_dir import record_if_killed

    if killed := record_if_killed(output_dir):
        click.echo(killed, err=True)
    check_output(out_dir if out_dir is not None else f"{output_dir}/figures", directory=True)
    paths, log = write_report(output_dir, list(eval_reports), out_dir)
    for path in paths:
        click.echo(f"wrote {path}")
    for source in eval_reports:  # the run's model card gains each evaluation of its final-model
        if card := record_evaluation(f"{output_dir}/final-model", read_json(source, dict, "a report"), source):
            click.echo(f"added the evaluation {source} to {card}")
    click.echo(metrics_table(log))


COMMANDS = [report]
