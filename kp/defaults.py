"""kp's shared defaults, one definition and one name each. Standard library only: the command line reads them for its
help before it imports torch."""

SCORE_THRESHOLD = 0.3  # a keypoint scored below it counts as missing (faded in overlays, empty in DeepLabCut files,
# left out of smoothing and of refine's machine labels)
MISS_RATE = 0.1  # alpha: the calibrated uncertainty radius misses the true point with this probability
PCK_THRESHOLDS = (0.05, 0.1)  # PCK at these fractions of the normalising length
WORST_SAMPLES = 16  # samples in the evaluation report's gallery of the worst
SPLITS = ("train", "val", "test")  # a dataset's splits (kp.data.splits)
EVALUATED_SPLITS = ("test", "val", "train", "all")  # what kp evaluate scores: a split, or all three
