"""Prometheus metrics: instruments the node updates, and what a scrape of /metrics reads.

prometheus_client decides once, when it is first imported, whether values live in memory or in
the per-process files of its multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``). `echo-node
serve` sets that directory before anything imports the library, so the modules of this package
are imported only from inside functions (``echo_node.node.open_node``, the /metrics route),
never at module level by code the CLI loads.
"""

# prometheus_client's switch to multiprocess mode: the directory of the per-process files.
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
