package main

// defaultGCPercent is the agent's default GOGC. The agent's live heap is
// small (about 3 MB with five pods, 1.3 MB of it Badger's memtable) and it
// allocates about 40 KB a second at idle, so with the heap allowed to grow
// by a quarter over it, it collects a few times a minute, at about 0.2 %
// of a core, and its anonymous memory stays near 7.5 MiB (Go's default of
// 100 lets it reach about 10 MiB; see docs/benchmarks.md).
const defaultGCPercent = 25

// defaultMemoryLimit is the agent's default soft memory limit, a backstop
// well above what the agent uses at idle (about 12 MiB of Go memory with
// five pods): it bounds the heap when the agent needs more for a while
// (compacting a full outbox after a long outage) without binding in steady
// state. A limit near the steady state makes the collector run without
// pause: at 16 MiB, with Badger's former 4 MiB memtable, the agent
// collected 40 times a second and used a fifth of a core at idle.
const defaultMemoryLimit = "24Mi"
