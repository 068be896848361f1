"""Study processing jobs: the durable queue, the stable-study scheduler and the worker."""
