"""A report to look at: the Theorem 1 certificate of one point as JSON, a one-page HTML file
and Markdown with SVG charts, all readable offline (no script, nothing fetched).

:func:`write_report` (also ``Theorem1Result.save_report(DIR)`` and ``gradbasis certify
--report DIR``) writes into DIR:

* ``report.json`` -- every number (the command line's full report when it writes one);
* ``report.html`` -- the verdict and its reason, L(theta) against the certified interval, the
  induced infimum over the singular-value cut (the profile), J's spectrum with the rank cut,
  the Hessian extremes, the setting, timings and versions; charts inline as SVG;
* ``report.md`` with ``interval.svg``, ``profile.svg`` and ``spectrum.svg`` beside it.

Files are written to a temporary name and renamed, so a report is never half written.
"""

from __future__ import annotations

from .pages import versions, write_report

__all__ = ["versions", "write_report"]
