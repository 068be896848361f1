"""The node's self-test (`echo-node selftest`, and daily with `selftest_time`): a phantom
study with known ground truth through the node's own front door, processed like any study,
every reported value compared with the truth (run.py, compare.py)."""
