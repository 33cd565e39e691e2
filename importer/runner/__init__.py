"""The runner: one attempt of a run, start to summary.

``entry`` holds the three ways to start (run, resume, retry) and prepares an ``attempt``;
``execute`` runs it to its report; ``engine`` drives reading, converting, packing and sending in
one event loop, on the counts of ``accounting``; ``signals`` turns SIGINT/SIGTERM into a drain;
``report`` is what a run tells its caller.
"""

from importer.runner.entry import resume_import, retry_import, run_import
from importer.runner.report import Reporter, RunReport

__all__ = ["Reporter", "RunReport", "resume_import", "retry_import", "run_import"]
