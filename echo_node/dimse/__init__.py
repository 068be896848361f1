"""The DIMSE side of the node: a pynetdicom SCP for C-ECHO, C-STORE and storage commitment."""
