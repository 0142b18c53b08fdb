"""The Hydra config groups kp composes (conf/train.yaml is the root): conf/ in a checkout, shipped in the wheel as the
package kp.conf (pyproject.toml maps one to the other), which Hydra finds as pkg://kp.conf."""
