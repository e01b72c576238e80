"""Results: the results file (write, read, compact form), merging shards, comparing two runs,
the findings and the verdict."""
