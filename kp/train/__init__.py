"""Training: the loop (fit, test the best checkpoint, report), kp's own callbacks, the run record (run_info.json),
W&B logging, sweeps with their leaderboard and learning curve."""
