"""The patch machinery: the series per upstream release (`series.py`), the in-memory unified-diff applier behind it
(`unified_diff.py`), and the port of a series onto another release (`port.py`: a three-way merge per patch,
`merge3.py`; the release fetched from PyPI by `releases.py`, checked by its own test suite, `upstream_suite.py`).

Nothing here imports OpenRLHF: it reads and writes upstream's files as text.
"""
