package unitfile

import (
	_ "embed"
	"strings"
)

// Name is the unit's file name.
const Name = "msp-agent.service"

// Service is the content of msp-agent.service.
//
//go:embed msp-agent.service
var Service []byte

// Capabilities returns the unit's capability bounding set: what the agent
// may use under systemd, and what tests run it with.
func Capabilities() []string {
	var caps []string
	for _, line := range strings.Split(string(Service), "\n") {
		if v, ok := strings.CutPrefix(line, "CapabilityBoundingSet="); ok {
			caps = append(caps, strings.Fields(v)...)
		}
	}
	return caps
}
