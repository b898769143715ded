"""One core per finder run: the compiled libraries' own thread pools limited to one thread.

Tiles are the unit of parallelism (parts of the job, run by every process running jobs:
``vo/uws/parts.py``; one search at a time per process, ``vo/sfind/run.py``), so a run must not also
start a thread per core in OpenBLAS (numpy and scipy's linear algebra) or OpenMP. On a shared or
busy machine those threads cost far more than they give: Aegean's fits invert and diagonalise a
small covariance matrix per island (``docov``), and OpenBLAS's threads synchronise by spinning, so
when a core is taken by anything else (another tile, the service's own processes, PostgreSQL) each
small call waits for a descheduled thread. Measured on the 2-core machine at load 4 (issue 18):
``scipy.linalg.inv`` took 29 times, ``eigh`` 12 times and ``dot`` 16 times as long with 2 threads as
with 1, and the job's search ran 4 times as long as the same call made directly in a quieter
process.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import threadpool_limits

__all__ = ["one_core"]


@contextmanager
def one_core() -> Iterator[None]:
    """Run the block with BLAS and OpenMP limited to one thread (restored after).

    threadpoolctl limits only the libraries already loaded: the finders' own (AegeanTools, bdsf) must be
    imported before the block. scipy's linear algebra is imported here, since it brings its own
    OpenBLAS (besides numpy's) that a finder's lazy imports would otherwise load unlimited: a fresh
    process's first Aegean run on a 541 x 541 cut fitted for 18.6 s instead of 1.9 s."""
    import scipy.linalg  # noqa: F401  (loads scipy's OpenBLAS, so that it is limited too)

    with threadpool_limits(limits=1):
        yield
