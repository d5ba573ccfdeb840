// Package services keeps the node's view of its Services and programs it:
// from the newest persisted snapshot (its Network and Services, with the
// endpoints the hub last computed) and the reconciler's newest pod status
// report, it merges the endpoints of the node's own pods from what the
// agent sees of them (Merge), so that a local pod that restarts, changes
// address, fails its readiness probe or appears is reflected at once,
// with or without the hub; then it programs the result into the kernel's
// Service rules (package proxy) and the cluster DNS server (package dns),
// which it serves on the node's bridge address.
package services
