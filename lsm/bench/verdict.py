r"""The verdict of an A/B comparison: the ratio of per-call times with a distribution-free interval.

Each *pair* of rounds times revision A and revision B back to back on the same input (the order
alternates, ABBA), so both see the same machine state; its ratio :math:`r_i = t_{B,i} / t_{A,i}`
cancels the load that drifts slower than a pair. The ratios of one case are not normal (a burst
of load from another process makes one of them far off), so the estimate is their median and its
interval comes from the sign test, which assumes only that the pairs are independent: with the
ratios sorted, :math:`r_{(1)} \le \dots \le r_{(n)}`, the interval

.. math::

    \bigl[r_{(k)},\ r_{(n+1-k)}\bigr], \qquad
    k = \max \{\, j \ge 1 : P(\mathrm{Binomial}(n, \tfrac12) < j) \le \alpha / 2 \,\}

holds the true median ratio with probability at least :math:`1 - \alpha`. With threshold
:math:`t`, a case is

- ``slower`` when the whole interval lies above :math:`1 + t`,
- ``faster`` when it lies below :math:`1 / (1 + t)`,
- ``no change`` when it lies within :math:`[1 / (1 + t), 1 + t]` (a settled answer),
- ``no detectable change`` otherwise: the interval straddles a bound (more rounds might tell).

The runner stops a case as soon as its verdict is settled (any of the first three); checking
after every pair would spend the confidence, so the default level is 99%.
"""

import math
from dataclasses import dataclass

SLOWER, FASTER, NO_CHANGE, UNDECIDED = "slower", "faster", "no change", "no detectable change"


def median(values):
    """The median of a non-empty sequence of numbers."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def sign_test_rank(n, alpha):
    """The rank ``k`` of the sign-test interval (see the module docstring), or 0 when ``n`` pairs
    are too few for that confidence (``2 * 0.5 ** n > alpha``)."""
    below = 0.0  # P(Binomial(n, 1/2) < k), built up term by term
    k = 0
    while k < n:
        below += math.comb(n, k) * 0.5**n
        if below > alpha / 2:
            break
        k += 1
    return k


def median_interval(ratios, confidence=0.99):
    """``(low, high)``: the sign-test interval of the median of ``ratios``; None when too few."""
    k = sign_test_rank(len(ratios), 1 - confidence)
    if k == 0:
        return None
    ordered = sorted(ratios)
    return ordered[k - 1], ordered[len(ordered) - k]


@dataclass(frozen=True)
class Verdict:
    """What the pairs of one case say: ``ratio`` (median B/A time) in ``[low, high]``."""

    verdict: str
    ratio: float
    low: float
    high: float
    pairs: int

    @property
    def settled(self):
        return self.verdict != UNDECIDED


def judge(ratios, threshold, confidence=0.99):
    """The :class:`Verdict` of the per-pair time ratios B/A at ``threshold`` (0.05 for 5%)."""
    interval = median_interval(ratios, confidence)
    ratio = median(ratios)
    if interval is None:
        return Verdict(UNDECIDED, ratio, 0.0, math.inf, len(ratios))
    low, high = interval
    upper, lower = 1 + threshold, 1 / (1 + threshold)
    if low > upper:
        verdict = SLOWER
    elif high < lower:
        verdict = FASTER
    elif lower <= low and high <= upper:
        verdict = NO_CHANGE
    else:
        verdict = UNDECIDED
    return Verdict(verdict, ratio, low, high, len(ratios))
