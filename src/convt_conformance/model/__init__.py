"""The data model every stage shares: the convolution spec and its validity rules, dtypes, a case,
a check id, a check record, statuses, limits, string padding, shards and the machine facts.
Imports nothing above it."""
