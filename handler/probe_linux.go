package handler

import "github.com/mspguest/msp/handler/osgate"

// ProbeKernel implements Environment.
func (OS) ProbeKernel() error { return osgate.ProbeKernel() }
