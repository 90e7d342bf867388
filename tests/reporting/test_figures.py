"""`riskdpo report`: real metrics.jsonl and eval reports in, real PNGs out."""

import json
import math
import random

import pytest
from click.testing import CliRunner
from matplotlib.image import imread

from riskdpo.cli import main
from riskdpo.reporting.figures import plot_reward_vs_divergence, read_training_log
from riskdpo.evaluation.stats import summarize_categories

CATEGORIES = ["risk_averse", "risk_neutral", "too_risk_averse", "other", "invalid"]
TRAINING_FIGURES = ["loss.png", "reward_accuracy.png", "reward_margins.png", "reward_vs_divergence.png"]


def dpo_record(step, rng, prefix=""):
    """Statistics shaped like training's: rewards = beta * log-ratio, margin = chosen - rejected."""
    margin = 0.05 * step + rng.gauss(0, 0.05)
    chosen = -0.02 * step + margin / 2
    stats = {
        "loss": math.log1p(math.exp(-margin)),
        "rewards/chosen": chosen,
        "rewards/rejected": chosen - margin,
        "rewards/accuracy": min(1.0, 0.5 + step / 50),
        "rewards/margin": margin,
        "logps/chosen": -4.0 + chosen,
        "logps/rejected": -4.0 + chosen - margin,
    }
    return {f"{prefix}{key}": value for key, value in stats.items()}


def write_run(run_dir, steps=24, beta=0.5):
    """metrics.jsonl with warm-up, train and validation lines, and run.json with beta."""
    rng = random.Random(7)
    lines = [{"sft/step": 1, "sft/epoch": 1, "sft/loss": 2.1, "sft/lr": 1e-5, "sft/grad_norm": 3.0}]
    lines.append({"step": 0, "epoch": 0.0, **dpo_record(0, rng, "val/"), "val/pairs/s": 9.0, "val/tokens/s": 900.0})
    for step in range(1, steps + 1):
        lines.append({"step": step, "epoch": step / 12, **dpo_record(step, rng), "lr": 1e-5, "grad_norm": 0.8, "pairs/s": 4.0, "tokens/s": 400.0})
        if step % 8 == 0:
            lines.append({"step": step, "epoch": step / 12, **dpo_record(step, rng, "val/"), "val/pairs/s": 9.0, "val/tokens/s": 900.0})
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (run_dir / "run.json").write_text(json.dumps({"config": {"beta": beta, "model": "smollm2-135m"}}))
    return lines


def model_summary(name, risk_averse_share, seed):
    """An eval-choices model entry computed with the real rate/interval code, with strata."""
    rng = random.Random(seed)
    rest = (1 - risk_averse_share) / 4
    choices = rng.choices(CATEGORIES, [risk_averse_share, rest, rest, rest, rest], k=90)
    entry = {"model": name, **summarize_categories(choices, CATEGORIES).to_json()}
    entry["strata"] = {
        "num_options": {str(k): summarize_categories(choices[i::3], CATEGORIES).to_json() for i, k in enumerate([2, 3, 5])},
        "sheet": {"low": summarize_categories(choices[:45], CATEGORIES).to_json(), "high": summarize_categories(choices[45:], CATEGORIES).to_json()},
    }
    return entry


def write_eval(path, models):
    path.write_text(json.dumps({"command": "eval-choices", "categories": CATEGORIES, "models": models, "comparisons": []}))
    return path


def run(*args):
    return CliRunner().invoke(main, ["report", *map(str, args)])


def assert_real_png(path):
    image = imread(path)
    height, width = image.shape[:2]
    assert 300 <= height <= 2000 and 500 <= width <= 3000
    ink = (image[..., :3] < 0.5).any(axis=-1).mean()
    assert 0.005 < ink < 0.5, f"{path.name} looks blank or filled ({ink:.4f})"


def test_training_and_eval_figures(tmp_path):
    lines = write_run(tmp_path / "run")
    before = write_eval(tmp_path / "before.json", [model_summary("smollm2-135m", 0.3, 1)])
    after = write_eval(tmp_path / "after.json", [model_summary("smollm2-135m", 0.3, 1), model_summary("run/final-model", 0.75, 2)])

    result = run(tmp_path / "run", "--eval", before, "--eval", after)

    assert result.exit_code == 0, result.output
    figures = tmp_path / "run" / "figures"
    names = TRAINING_FIGURES + ["eval_risk_averse.png"]
    assert sorted(path.name for path in figures.iterdir()) == sorted(names)
    for name in names:
        assert f"wrote {figures / name}" in result.output
        assert_real_png(figures / name)
    # one panel overall plus one per stratum makes the eval figure wider than the others
    assert imread(figures / "eval_risk_averse.png").shape[1] > imread(figures / "loss.png").shape[1]
    last_train = [line for line in lines if "loss" in line][-1]
    last_val = [line for line in lines if "val/loss" in line][-1]
    table = {row.split()[0]: row.split()[1:] for row in result.output.strip().splitlines()[-2:]}
    assert table["train"][:2] == [str(last_train["step"]), f"{last_train['loss']:.4g}"]
    assert table["val"][:2] == [str(last_val["step"]), f"{last_val['val/loss']:.4g}"]


def test_same_inputs_same_bytes_and_out_dir(tmp_path):
    write_run(tmp_path / "run")
    first, second = tmp_path / "a", tmp_path / "b"
    assert run(tmp_path / "run", "-o", first).exit_code == 0
    assert run(tmp_path / "run", "-o", second).exit_code == 0
    assert not (tmp_path / "run" / "figures").exists()
    for name in TRAINING_FIGURES:
        assert (first / name).read_bytes() == (second / name).read_bytes()
    assert not (first / "eval_risk_averse.png").exists()


def test_log_splits_train_validation_and_warmup(tmp_path):
    lines = write_run(tmp_path)
    log = read_training_log(tmp_path / "metrics.jsonl")
    assert [row["step"] for row in log.val] == [0, 8, 16, 24]
    assert len(log.train) == sum("loss" in line for line in lines)
    assert all("sft/loss" not in row and "loss" in row for row in log.train + log.val)
    val_lines = [line for line in lines if "val/loss" in line]
    assert [row["rewards/margin"] for row in log.val] == [line["val/rewards/margin"] for line in val_lines]


def test_divergence_panel_plots_log_ratios_in_nats(tmp_path):
    write_run(tmp_path)
    log = read_training_log(tmp_path / "metrics.jsonl")
    for beta, scale in ((0.25, 0.25), (None, 1.0)):
        over_steps = plot_reward_vs_divergence(log, beta).axes[0]
        lines = {line.get_label(): line for line in over_steps.get_lines()}
        chosen = lines["chosen (train)"].get_ydata()
        mean = lines["mean (divergence proxy) (train)"].get_ydata()
        assert list(chosen) == pytest.approx([row["rewards/chosen"] / scale for row in log.train])
        expected_mean = [(row["rewards/chosen"] + row["rewards/rejected"]) / (2 * scale) for row in log.train]
        assert list(mean) == pytest.approx(expected_mean)


def test_cut_off_last_line_is_dropped(tmp_path):
    write_run(tmp_path)
    with open(tmp_path / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 25, "loss": 0.3')  # a crash mid-write
    assert len(read_training_log(tmp_path / "metrics.jsonl").train) == 24


def test_tolerates_partial_eval_reports(tmp_path):
    write_run(tmp_path / "run")
    entry = model_summary("m", 0.5, 3)
    del entry["intervals"]
    entry["strata"]["sheet"]["low"] = {"n": 0}
    entry["strata"]["broken"] = "not a dict"
    report = write_eval(tmp_path / "partial.json", [{"model": "no rates here"}, entry])
    result = run(tmp_path / "run", "--eval", report)
    assert result.exit_code == 0, result.output
    assert_real_png(tmp_path / "run" / "figures" / "eval_risk_averse.png")


@pytest.mark.parametrize(
    "damage, message",
    [
        ("not json", "line {line}: not JSON"),
        ('["a list"]', "line {line}: expected a JSON object"),
        ('{"loss": 0.5}', "line {line}: the record has no numeric step"),
        ('{"step": 3, "loss": "low"}', "line {line}: loss is 'low', not a number"),
    ],
)
def test_malformed_metrics_line_exit_2_and_write_nothing(tmp_path, damage, message):
    lines = write_run(tmp_path)
    with open(tmp_path / "metrics.jsonl", "a") as handle:
        handle.write(damage + '\n{"step": 99, "loss": 0.1}\n')
    assert_user_error(run(tmp_path), message.format(line=len(lines) + 1), tmp_path)


def test_missing_or_empty_metrics_exit_2(tmp_path):
    assert_user_error(run(tmp_path), f"{tmp_path / 'metrics.jsonl'}: no such file", tmp_path)
    (tmp_path / "metrics.jsonl").write_text('{"sft/step": 1, "sft/loss": 2.0}\n')
    assert_user_error(run(tmp_path), "no DPO steps logged", tmp_path)


def assert_user_error(result, message, run_dir):
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and result.output.startswith("error: "), result.output
    assert message in result.output
    assert not (run_dir / "figures").exists()


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such file"),
        ("{not json", "not a JSON eval-choices report"),
        ('[{"model": "x"}]', 'not an eval-choices report (no "models" list)'),
        ('{"models": [{"model": "x", "rates": {"risk_neutral": 1.0}}]}', "no model with a risk-averse rate"),
    ],
)
def test_bad_eval_report_exit_2_and_write_nothing(tmp_path, content, message):
    write_run(tmp_path / "run")
    report = tmp_path / "eval.json"
    if content is not None:
        report.write_text(content)
    assert_user_error(run(tmp_path / "run", "--eval", report), f"--eval {report}: {message}", tmp_path / "run")


def test_eval_figure_names_models_shortly_orders_stakes_and_draws_the_reference():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from riskdpo.evaluation.figure import REFERENCE_LABEL, plot_eval_rates, report_points

    models = [model_summary("/home/someone/runs/averse/final-model", 0.7, 4), model_summary("HuggingFaceTB/SmolLM2-135M", 0.3, 5)]
    for model, name in zip(models, ["averse", "base"]):
        model["name"] = name
        model["strata"]["stakes"] = {level: model["strata"]["sheet"]["low"] for level in ["high", "astronomical", "low", "medium"]}
    chooser = {"best": 0.55, "strata": {"stakes": {"low": 0.5, "medium": 0.6, "high": 0.4, "astronomical": 0.5}}}
    figure = plot_eval_rates(report_points({"models": models, "position_chooser": chooser}))
    FigureCanvasAgg(figure).draw()
    panels = {axis.get_title(): axis for axis in figure.axes if axis.get_visible()}
    overall, stakes = panels["Overall risk-averse rate"], panels["Risk-averse rate by stakes"]
    assert [tick.get_text() for tick in overall.get_xticklabels()] == ["averse", "base"]
    assert [tick.get_text() for tick in stakes.get_xticklabels()] == ["low", "medium", "high", "astronomical"]
    references = lambda axis: sorted({round(float(y), 6) for c in axis.collections if hasattr(c, "get_segments") for s in c.get_segments() if len(s) == 2 and s[0][1] == s[1][1] for y in (s[0][1],)})  # noqa: E731
    assert references(overall) == [0.55]
    assert references(stakes) == [0.4, 0.5, 0.6]
    (legend,) = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == ["averse", "base", REFERENCE_LABEL]
    renderer = figure.canvas.get_renderer()
    lowest = min(axis.get_tightbbox(renderer).y0 for axis in panels.values())
    assert legend.get_window_extent(renderer).y1 <= lowest  # below every panel, off the data
