package authz

import "github.com/mspguest/msp/agent/hostproto"

// EffectiveMode is the mode the agent applies to one endpoint (issue 9,
// "modes, one source of truth"): the host's mode from the secure channel,
// made stricter by the settings item when it states a mode. Settings never
// loosen (enforce > audit > disabled); a nil item or one without a mode
// follows the host. An unknown settings mode is enforced (I-20). The same
// value drives authorization (Merge) and the redirector's targets.
func EffectiveMode(host hostproto.Mode, settings *hostproto.AuthorizationItem) hostproto.Mode {
	if settings == nil || settings.Mode == "" {
		return host
	}
	m, _ := hostproto.ParseMode(settings.Mode)
	return max(host, m)
}

// EffectiveModes applies EffectiveMode to every endpoint. HostGAPlugin
// follows WireServer: the host's WireServer mode and the wireServer
// settings item (host-protocol.md §4).
func EffectiveModes(host hostproto.Modes, imds, wireServer *hostproto.AuthorizationItem) hostproto.Modes {
	ws := EffectiveMode(host.WireServer, wireServer)
	return hostproto.Modes{IMDS: EffectiveMode(host.IMDS, imds), WireServer: ws, HostGAPlugin: ws}
}
