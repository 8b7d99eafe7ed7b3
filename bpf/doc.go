// Package bpf loads and attaches the eBPF programs that redirect connections
// to the metadata services to the local signing proxy and record, in the
// kernel, which process made each connection.
//
// Specification: ../shared/spec/ebpf.md.
package bpf
