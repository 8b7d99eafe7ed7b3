// Package hostsim emulates the host side of the Metadata Security Protocol
// (IMDS, WireServer with the secure channel, HostGAPlugin) on loopback
// addresses, verifying request signatures like a host in enforce mode would.
//
// It never listens on or forwards to a non-loopback address.
//
// Specification: ../shared/spec/host-protocol.md §11.
package hostsim
