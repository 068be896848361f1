"""The DIMSE side of the node: a pynetdicom SCP for C-ECHO and C-STORE."""
