"""The retention policy: received studies deleted a set time after their results were delivered
(policy.py decides, sweep.py deletes, `echo-node cleanup` and the scheduled sweep run it)."""
