"""Fetching the publishers' model files for `echo-node models fetch` (download.py: HTTP;
models.py: checking and installing what was downloaded)."""
