"""Written reasoning about lotteries: each option's expected value and certainty
equivalent, exactly computed, then the option an agent picks.

For an option paying x_i with probability p_i and an agent with CARA
coefficient alpha (u(x) = 1 - exp(-alpha x); alpha = 0 is the linear agent):

    EV = sum_i p_i x_i
    CE_alpha = -ln(sum_i p_i exp(-alpha x_i)) / alpha     (= EV at alpha = 0)

computed in log space by `riskdpo.data.expected_utility.certainty_equivalent`,
so the numbers stay exact at astronomical stakes. Options are named by their
canonical label and every text ends in ``Answer: <label>``.

Two templates:

- `reasoning`: one agent's own reasoning (`riskdpo generate --cot`); the
  linear agent writes expected values only, so its text is shorter.
- `matched_reasoning`: the reasoning of the two agents of a preference pair
  written alike: the same per-option lines (EV and every CE either agent
  uses), differing only in the rule that picks and the answer, so that a
  pair's chosen and rejected responses are not told apart by their length.
"""

from __future__ import annotations

from typing import Sequence

from riskdpo.data.expected_utility import best_labels, certainty_equivalent
from riskdpo.data.situations import Option


def format_money(amount: float, cents: bool = False) -> str:
    """Dollars as prompts write them: ``$2,430``, ``-$92``, ``$6.75e+17``; ``$61.40`` with `cents`.

    Amounts from $1,000,000 up are written to three significant figures in
    e-notation; smaller whole amounts without cents unless `cents` asks for them.
    """
    sign = "-" if amount < 0 else ""
    magnitude = abs(amount)
    if magnitude >= 1e6:
        body = f"{magnitude:.2e}"
    elif magnitude == int(magnitude) and not cents:
        body = f"{int(magnitude):,}"
    else:
        body = f"{magnitude:,.2f}"
    return f"{sign}${body}"


def expected_value(option: Option) -> float:
    return certainty_equivalent(option.prizes, option.probs, 0.0)


def option_line(option: Option, alphas: Sequence[float], name_alphas: bool) -> str:
    """``Option b: expected value 0.50 * $100 + 0.50 * $0 = $50.00; certainty equivalent $37.99.``

    One certainty equivalent per alpha of `alphas`, each written
    ``certainty equivalent CE(0.01) = $37.99`` when `name_alphas`.
    """
    terms = " + ".join(f"{p:.2f} * {format_money(x)}" for p, x in zip(option.probs, option.prizes))
    line = f"Option {option.label}: expected value {terms} = {format_money(expected_value(option), cents=True)}"
    for alpha in alphas:
        named = f" CE({alpha:g}) =" if name_alphas else ""
        ce = certainty_equivalent(option.prizes, option.probs, alpha)
        line += f"; certainty equivalent{named} {format_money(ce, cents=True)}"
    return line + "."


def _best(options: Sequence[Option], alpha: float) -> str:
    """The best option's label for `alpha`; of tied options the first."""
    return best_labels([(option.label, option.prizes, option.probs) for option in options], alpha)[0]


def reasoning(options: list[Option], alpha: float) -> str:
    """A short templated chain of thought of the agent with CARA coefficient `alpha` (0 = linear).

    It writes out each option's expected value sum_i p_i x_i; for alpha > 0 it
    adds the certainty equivalent CE = -ln(sum_i p_i exp(-alpha x_i)) / alpha
    and picks the highest CE, for alpha = 0 the highest expected value. It ends
    in ``Answer: <canonical label>``; options are named by canonical label.
    """
    criterion = "expected value" if alpha == 0 else "certainty equivalent"
    lines = ["I compare the options by expected value."]
    if alpha:
        lines = [
            f"I compare the options by expected utility with u(x) = 1 - exp(-{alpha:g}x), that is by the "
            f"certainty equivalent CE = -ln(sum p exp(-{alpha:g}x)) / {alpha:g}."
        ]
    lines += [option_line(option, (alpha,) if alpha else (), name_alphas=False) for option in options]
    best = _best(options, alpha)
    lines.append(f"The highest {criterion} is that of option {best}.")
    lines.append(f"Answer: {best}")
    return "\n".join(lines)


def matched_reasoning(options: Sequence[Option], alpha: float, shown_alphas: Sequence[float]) -> str:
    """The reasoning of the agent with CARA coefficient `alpha`, in the shape both agents of a pair share.

    Every option line gives EV and the CE at each positive alpha of
    `shown_alphas` (pass the same `shown_alphas` for both agents of a pair;
    `alpha` must be 0 or one of them). Only the last two lines depend on
    `alpha`: the rule (highest EV for alpha = 0, else highest CE(alpha)) with
    the option it picks, and ``Answer: <label>``; the rules are written
    equally briefly (``EV``, ``CE(0.01)``), so the two texts differ in length
    by a few characters only.
    """
    shown = sorted({a for a in shown_alphas if a > 0})
    if alpha and alpha not in shown:
        raise ValueError(f"alpha {alpha:g} is not among the shown alphas {shown}")
    if not shown:
        raise ValueError("matched reasoning shows at least one certainty equivalent")
    at = " and ".join(f"alpha = {a:g}" for a in shown)
    lines = [
        "For each option I work out the expected value EV = sum p x and the certainty equivalent "
        f"CE(alpha) = -ln(sum p exp(-alpha x)) / alpha at {at}."
    ]
    lines += [option_line(option, shown, name_alphas=True) for option in options]
    rule = "EV" if alpha == 0 else f"CE({alpha:g})"
    best = _best(options, alpha)
    lines.append(f"I choose the option with the highest {rule}: option {best}.")
    lines.append(f"Answer: {best}")
    return "\n".join(lines)
