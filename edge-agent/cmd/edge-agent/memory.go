package main

// defaultMemoryLimit is the agent's default soft memory limit. At idle with
// five pods and metrics on, the Go heap then stays near its live size: the
// agent's anonymous memory drops from about 12 MiB to about 7 MiB (see
// docs/benchmarks.md). It is a target for the garbage collector, not a cap:
// when the agent needs more (compacting a full outbox after a long outage),
// it takes it, and collects more often while it does.
const defaultMemoryLimit = "16Mi"
