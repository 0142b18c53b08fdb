"""The relabel loop's middle step: the frames a model gets wrong, picked and written as a labelling job
(`kp refine`), and the corrected labels merged back into the project (`kp refine merge`)."""
