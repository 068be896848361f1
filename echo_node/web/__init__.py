"""The DICOMweb service (PS3.18: STOW-RS, QIDO-RS, WADO-RS) on the node's store and database."""
