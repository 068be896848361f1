"""Bringing back a study the node no longer holds from a configured source (`echo-node
reprocess STUDY_UID --from NAME`): C-GET or C-MOVE from a DIMSE Query/Retrieve SCP, or WADO-RS
from a DICOMweb server, every instance through the normal ingest path (echo_node.ingest)."""
