"""Statements about seed ensembles decided by tests, not by a spread rule (issue 21).

- ``transforms``        on which scale each metric is tested (log for positive skewed metrics,
                        log(AUC − ½) for an AUC, raw for an NLL): the declared table
- ``hypothesis_tests``  Welch / paired t, exact permutation / signed-rank, bootstrap intervals, TOST
                        (thin wrappers of scipy.stats and statsmodels)
- ``power``             how many seeds an undecided statement would need
- ``verdicts``          one statement's tests (:func:`compare`), a notebook's Holm step and the
                        verdicts and sentences (:func:`decide`), a markdown table of them

Usage, one notebook::

    s1 = compare(rows["QINN"]["js/m_ll"], rows["INN 2k"]["js/m_ll"], metric="js/m_ll",
                 a_label="QINN", b_label="INN 2k", expected="b<a", words="...")
    decided = decide([s1, s2, ...], family="05_qinn_vs_inn")
"""

from qinn_lib.evaluation.statistics.verdicts import (
    ALPHA,
    EXPECTED,
    FOUND,
    VERDICT_KEYS,
    VERDICTS,
    compare,
    decide,
    effect_words,
    format_p,
    format_verdict_table,
    order_line,
)

__all__ = ["ALPHA", "EXPECTED", "FOUND", "VERDICTS", "VERDICT_KEYS", "compare", "decide", "effect_words",
           "format_p", "format_verdict_table", "order_line"]
