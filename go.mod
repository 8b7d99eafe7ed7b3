module github.com/mspguest/msp

go 1.26

tool github.com/cilium/ebpf/cmd/bpf2go

require (
	github.com/cilium/ebpf v0.22.0
	github.com/sirupsen/logrus v1.9.4
	golang.org/x/sys v0.43.0
)
