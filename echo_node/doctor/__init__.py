"""`echo-node doctor`: checks an administrator runs when something looks wrong.

Each check returns rows of (check, OK/WARN/FAIL, detail). Rows name what they found by UID,
job id or path inside the data directory, never by anything that identifies the patient.
"""
