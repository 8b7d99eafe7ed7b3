package hostsim_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/hostsim"
)

// imdsClient returns an *http.Client whose dialer maps the real IMDS
// address to the emulator: the request keeps its real Host and path, and
// any other address fails to dial, so no packet leaves loopback.
func imdsClient(t *testing.T, emulatorAddr string) *http.Client {
	var d net.Dialer
	return &http.Client{Transport: &http.Transport{
		Proxy: nil, // never an HTTP(S)_PROXY from the environment
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr != "169.254.169.254:80" {
				t.Errorf("dial %s %s: only 169.254.169.254:80 is mapped", network, addr)
				return nil, fmt.Errorf("test dialer: %s is not mapped to the emulator", addr)
			}
			return d.DialContext(ctx, "tcp", emulatorAddr)
		},
	}}
}

// TestManagedIdentityCredential gets a token from the emulated IMDS with
// azidentity (issue 3 "Done means"), then checks that enforce mode rejects
// the unsigned token request.
func TestManagedIdentityCredential(t *testing.T) {
	// Make MSAL pick IMDS whatever the environment says.
	for _, v := range []string{"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT", "MSI_ENDPOINT", "MSI_SECRET", "AZURE_CLIENT_ID"} {
		t.Setenv(v, "")
	}
	st := hostsim.DefaultState()
	st.Modes.IMDS = hostproto.ModeAudit
	e, err := hostsim.Start(hostsim.Config{IMDSAddr: "127.0.0.169:0", WireServerAddr: "127.0.0.168:0", HostGAAddr: "127.0.0.168:0", Initial: &st})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()

	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
		ClientOptions: azcore.ClientOptions{Transport: imdsClient(t, e.Addrs().IMDS), Retry: policy.RetryOptions{MaxRetries: -1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// MSAL caches managed-identity tokens process-wide: a resource of our
	// own makes every run (and -count=N) reach the emulator.
	resource := fmt.Sprintf("api://hostsim-%d", time.Now().UnixNano())
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{resource + "/.default"}})
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	if tok.Token == "" || time.Until(tok.ExpiresOn) < 23*time.Hour {
		t.Errorf("token %d bytes expiring %v; want a token valid ~24h", len(tok.Token), tok.ExpiresOn)
	}
	recs := e.Verifications(0)
	if len(recs) == 0 {
		t.Fatal("no request reached the emulator")
	}
	r := recs[len(recs)-1]
	host := ""
	for _, h := range r.Headers {
		if strings.EqualFold(h.Name, "Host") {
			host = h.Value
		}
	}
	if host != "169.254.169.254" || !strings.HasPrefix(r.RawTarget, "/metadata/identity/oauth2/token?") || !strings.Contains(r.RawTarget, "hostsim-") || r.Reason != hostsim.ReasonUnsigned || r.Status != 200 {
		t.Errorf("record host %q target %q reason %q status %d; want the real Host, the token path, unsigned (audit) and 200", host, r.RawTarget, r.Reason, r.Status)
	}

	// Enforce: the same unsigned request is refused.
	if _, err := e.Apply(&hostsim.Patch{Modes: &hostsim.ModesPatch{IMDS: ptr(hostproto.ModeEnforce)}}); err != nil {
		t.Fatal(err)
	}
	cred2, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
		ClientOptions: azcore.ClientOptions{Transport: imdsClient(t, e.Addrs().IMDS), Retry: policy.RetryOptions{MaxRetries: -1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cred2.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{resource + "-enforce/.default"}}); err == nil {
		t.Error("GetToken in enforce mode without a signature succeeded; want an error")
	}
	if r := e.Verifications(0); r[len(r)-1].Status != 401 {
		t.Errorf("last status %d; want 401", r[len(r)-1].Status)
	}
}

func ptr[T any](v T) *T { return &v }
