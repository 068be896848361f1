"""The DICOM Conformance Statement (docs/conformance.md), rendered from the code's own lists by
`echo-node conformance` (render.py fills statement.md with tables.py's tables)."""
