"""NMR along MD trajectories: reading, per-frame prediction, time averages, time-correlation
functions and the vibrational EFG scaling factor (docs/trajectory.md)."""
