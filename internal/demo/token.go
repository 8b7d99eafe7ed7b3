package demo

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// TokenClientVerb is msp-demo's subcommand for the token client.
const TokenClientVerb = "token-client"

// realIMDS is where azidentity dials; the client maps it to the emulator.
const realIMDS = "169.254.169.254:80"

// TokenClient gets a managed-identity token with azidentity, its dialer
// mapping the real IMDS address to imdsAddr (a loopback address the
// agent's redirector intercepts) and refusing any other address, so no
// packet leaves loopback. It prints the token's size and expiry, never
// the token.
func TokenClient(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(TokenClientVerb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	imds := fs.String("imds", DefaultAddrs.IMDS, "the emulated IMDS `host:port` (loopback)")
	resource := fs.String("resource", "api://msp-demo", "the token's resource")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	// Make MSAL pick IMDS whatever the environment says.
	for _, v := range []string{"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT", "MSI_ENDPOINT", "MSI_SECRET", "AZURE_CLIENT_ID"} {
		os.Unsetenv(v)
	}
	var d net.Dialer
	transport := &http.Client{Transport: &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr != realIMDS {
				return nil, fmt.Errorf("token client: %s is not mapped to the emulator", addr)
			}
			return d.DialContext(ctx, "tcp4", *imds)
		},
	}}
	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
		ClientOptions: azcore.ClientOptions{Transport: transport, Retry: policy.RetryOptions{MaxRetries: -1}},
	})
	if err != nil {
		fmt.Fprintln(stderr, "token client:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{*resource + "/.default"}})
	if err != nil {
		fmt.Fprintln(stderr, "token client:", err)
		return 1
	}
	fmt.Fprintf(stdout, "token of %d bytes, expires %s\n", len(tok.Token), tok.ExpiresOn.UTC().Format(time.RFC3339))
	return 0
}
