package control

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/hostsim"
)

func TestClient(t *testing.T) {
	e, err := hostsim.Start(hostsim.Config{IMDSAddr: "127.0.0.169:0", WireServerAddr: "127.0.0.168:0", HostGAAddr: "127.0.0.168:0", ControlAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	c := New(e.Addrs().Control, nil)

	audit := hostproto.ModeAudit
	v, err := c.SetState(ctx, hostsim.Patch{
		Modes:              &hostsim.ModesPatch{WireServer: &audit},
		AuthorizationRules: &hostsim.RulesPatch{IMDS: hostsim.SetItem(nil)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if v.Modes.WireServer != audit || v.AuthorizationRules.IMDS != nil || v.StateString != "WireServer Audit -  IMDS Disabled - HostGA Audit" {
		t.Errorf("after SetState: modes %+v imds %v state %q", v.Modes, v.AuthorizationRules.IMDS, v.StateString)
	}
	faults, err := c.SetFault(ctx, hostsim.Fault{Endpoint: "imds", Kind: hostsim.FaultDelay, DelayMs: 5, Count: 2})
	if err != nil || len(faults) != 1 || faults[0].Count != 2 {
		t.Errorf("SetFault: %v %v", faults, err)
	}
	if recs, err := c.Verifications(ctx, 0); err != nil || len(recs) != 0 {
		t.Errorf("Verifications: %v %v; want none yet", recs, err)
	}
	_, err = c.SetFault(ctx, hostsim.Fault{Endpoint: "dns", Kind: hostsim.FaultRefuse})
	var ce *Error
	if !errors.As(err, &ce) || ce.Status != 400 || !strings.Contains(ce.Message, `endpoint "dns"`) {
		t.Errorf("bad fault: %v; want *Error 400 naming the endpoint", err)
	}
	if err := c.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := c.State(ctx); err != nil || v.Modes != hostsim.DefaultState().Modes || len(v.Faults) != 0 {
		t.Errorf("after Reset: %+v %v", v, err)
	}
}
