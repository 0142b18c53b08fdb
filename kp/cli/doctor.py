"""The label doctor: `kp doctor data=<name> [overrides] [--run RUN] [--out DIR] [--worst N]`.

Reads a dataset as its loader gives it (no augmentation) and writes DIR/report.md (default doctor/) with pictures:
  - images and labelled keypoints per split, label coverage per keypoint (coverage.png);
  - exact duplicate images (same pixels) and near-duplicates (a 64-bit difference hash a few bits apart), within
    and across splits (duplicates.png);
  - labelled keypoints outside their image, and unit suspects (a sample whose coordinates all lie within [0, 1]);
  - suspected left/right swaps: a flip pair whose two points each lie nearer the other's place in the mean shape, after
    the sample is aligned to it (Procrustes: shift, scale, rotation) (swaps.png);
  - shape outliers: the distance to the mean shape after that alignment, point by point in units of each point's
    median distance, the worst N drawn with the mean shape laid over them and their worst point named (outliers.png);
  - with --run: the labels a trained model disagrees with most, drawn with both (disagreements.png), and per keypoint
    its mean disagreement beside its mean label-free error signal (the distance to the pose priors its checkpoint
    carries: the pose and multi-view PCA of its training labels).
`diagnose` returns the findings as well, for scripts and tests.
"""

from __future__ import annotations

import logging

from kp.cli.common import count, parser, user_errors_in_one_line


def main(argv: list[str] | None = None) -> None:
    command = parser("kp doctor", __doc__, overrides=True)
    command.add_argument("--run", default=None, help="a run dir or checkpoint: show where its model disagrees")
    command.add_argument("--out", default="doctor", help="folder for report.md and its pictures (default doctor/)")
    command.add_argument("--worst", type=count, default=8, help="outliers and disagreements to list and draw")
    options, overrides = command.parse_known_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with user_errors_in_one_line(options.verbose):
        from kp.config import check_types, compose_config

        cfg = compose_config(overrides, options.config_dir)
        check_types(cfg)
        from kp.evaluation.doctor import diagnose  # torch: once the overrides are known to be right

        report, findings = diagnose(cfg, options.run, options.out, options.worst)
    print(
        f"wrote {report}: {sum(n for n, _ in findings.counts.values())} images, "
        f"{len(findings.exact_duplicates)} exact duplicate group(s) ({len(findings.across_splits())} across splits), "
        f"{len(findings.near_duplicates)} near-duplicate pair(s), {len(findings.swaps)} swap suspect(s), "
        f"{len(findings.outside)} point(s) outside, {len(findings.unit_suspects)} unit suspect(s), "
        f"{len(findings.issues)} skipped sample(s)"
    )
