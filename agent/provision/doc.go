// Package provision tracks the agent's readiness and answers the
// provisioning contract of agent.md §3: the readiness bits (redirector,
// key latch, listener), the 120 s provisioning timeout, the provisioned.tag
// and status.tag files, the GET /provision answer served on the listener,
// and the client side of `msp-agent --status [--wait N]` that cloud-init
// and the extension run.
package provision
