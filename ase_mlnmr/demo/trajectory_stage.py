"""EFG time-correlation functions and scaling factors: the fix's on-the-fly result,
cross-checked by ``ase-mlnmr trajectory`` on the dumped frames (docs/trajectory.md)."""
from __future__ import annotations

from pathlib import Path

from ..trajectory.analysis import AnalysisOptions, TrajectoryResults
from ..trajectory.correlation import read_result
from ..trajectory.run import run_trajectory
from .glass import SPECORDER

__all__ = ["analyse_dump", "fix_scaling", "scaling_tolerance", "compare_scaling"]

#: Statistical difference between the streaming and the exact estimator measured in
#: docs/trajectory.md ("Tolerance beyond the first level"): ≤ 0.004 on G, raw form.
STATISTICAL_TOLERANCE_G = 0.004
#: Largest smoothing bias of the multiple-tau levels, m²/(3p²e²)·(1 − P) for p = 16, m = 2.
BIAS_PER_UNIT_DECAY = 7e-4


def analyse_dump(dump: Path, model, output: Path, timestep_fs: float, progress: bool = True) -> TrajectoryResults:
    """Run the trajectory tool on the dumped positions: it predicts every frame with
    ``NMRModel.predict`` (Si and Na skipped) and writes its files into ``output`` (not its
    own plots: the report draws them, with the demo's disclaimer)."""
    return run_trajectory(dump, model, output, type_map=dict(enumerate(SPECORDER, start=1)),
                          timestep_fs=timestep_fs, unknown_species="skip",
                          options=AnalysisOptions(n_blocks=8), plots=False, progress=progress)


def fix_scaling(acf_file: Path) -> dict[str, dict]:
    """Per element plateau entry (``P``, ``cq_scale``, ...) of the fix's result file."""
    header, _ = read_result(acf_file)
    return dict(header["plateau"])


def scaling_tolerance(plateau: float) -> float:
    """Documented agreement of the streaming correlator with the exact estimator, on P:
    0.004 (statistics) + 7e-4·(1 − P) (multiple-tau bias)."""
    return STATISTICAL_TOLERANCE_G + BIAS_PER_UNIT_DECAY * (1.0 - plateau)


def compare_scaling(fix: dict[str, dict], tool: dict[str, dict]) -> list[dict]:
    """Rows element, P and √P of the fix and of the tool (exact FFT estimator), |ΔP|,
    the tolerance and whether |ΔP| is within it."""
    rows = []
    for element in sorted(set(fix) | set(tool)):
        a, b = fix.get(element, {}), tool.get(element, {})
        p_fix, p_tool = a.get("P"), b.get("P")
        row = {"element": element, "P_fix": p_fix, "cq_scale_fix": a.get("cq_scale"), "P_tool": p_tool,
               "P_err_tool": b.get("P_err"), "cq_scale_tool": b.get("cq_scale")}
        if p_fix is not None and p_tool is not None:
            row["abs_difference_P"] = abs(p_fix - p_tool)
            row["tolerance_P"] = scaling_tolerance(p_tool)
            row["agree"] = row["abs_difference_P"] <= row["tolerance_P"]
        rows.append(row)
    return rows
