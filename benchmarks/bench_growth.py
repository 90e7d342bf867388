"""Growth section: how the cost of each stage scales with the size of its work.

- convert and make-pairs against the number of situations, each command a
  whole process as in the data section (`bench_data.data_growth_table`);
  linear growth shows as a flat cost per extra situation and a scaling
  exponent log(t2/t1) / log(n2/n1) near 1 (target: at most 1.15 between the
  two largest sizes);
- riskdpo train's step time against max length and batch size, tiny model
  (`bench_train.train_growth_tables`);
- eval-choices' time against the number of situations, both modes
  (`bench_eval.eval_growth_table`).
"""

from __future__ import annotations

from bench_data import data_growth_table, scaling_exponent
from bench_eval import eval_growth_table
from bench_train import train_growth_tables
from harness import SectionResult, Target
from settings import Settings

#: Largest scaling exponent between the two biggest sizes that still counts as linear growth.
LINEAR_EXPONENT = 1.15


def growth_section(settings: Settings) -> SectionResult:
    """How cost grows: data commands with situations, train steps with length and batch, eval with situations."""
    data_table, data_points = data_growth_table(settings)
    train_tables, train_points = train_growth_tables(settings)
    eval_table, eval_sides = eval_growth_table(settings)
    previous, last = data_points[-2], data_points[-1]
    exponents = {name: scaling_exponent(previous, last, step) for name, step in (("convert", "convert"), ("make-pairs", "make_pairs"))}
    targets = [
        Target(
            f"{name} grows linearly (exponent between {previous['situations']:,} and {last['situations']:,} situations)",
            exponent,
            LINEAR_EXPONENT,
            "<=",
            "",
            "the cost per extra situation rises with size (see ms per extra situation)",
        )
        for name, exponent in exponents.items()
    ]
    return SectionResult(
        section="growth",
        title="Growth: how cost scales",
        description=(
            "convert and make-pairs against the number of situations (each command a whole process, as in the data "
            "section); riskdpo train's step time against sequence length and batch size; eval-choices' time against "
            "the number of situations."
        ),
        tables=[data_table, *train_tables, eval_table],
        targets=targets,
        raw={"data": data_points, "train": train_points, "eval": eval_sides},
    )
