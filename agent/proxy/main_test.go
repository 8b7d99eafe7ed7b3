package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// The test binary doubles as the clients the end-to-end tests run inside
// the test cgroup: MSP_PROXY_CLIENT names the mode, MSP_DST the address it
// connects to (which the redirector sends to the proxy).
const (
	clientEnv = "MSP_PROXY_CLIENT"
	dstEnv    = "MSP_DST"
	reqEnv    = "MSP_REQ"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(clientEnv); mode != "" {
		if err := runClientMode(mode, os.Getenv(dstEnv)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runClientMode(mode, dst string) error {
	switch mode {
	case "raw":
		// Sends each RS-separated (0x1e) part of MSP_REQ as is on a connection
		// of its own, half-closes, prints everything read; the outputs
		// are RS-separated (0x1e) too.
		for i, part := range strings.Split(os.Getenv(reqEnv), "\x1e") {
			if i > 0 {
				os.Stdout.WriteString("\x1e")
			}
			if err := rawExchange(dst, part); err != nil {
				return err
			}
		}
		return nil
	case "hold":
		// Holds one keep-alive connection that was served once, then
		// sends MSP_REQ on a second one and prints what it read.
		c1, err := net.DialTimeout("tcp4", dst, 5*time.Second)
		if err != nil {
			return err
		}
		defer c1.Close()
		c1.SetDeadline(time.Now().Add(20 * time.Second))
		io.WriteString(c1, "GET /metadata/instance?api-version=2021-02-01 HTTP/1.1\r\nHost: h\r\nMetadata: true\r\n\r\n")
		if _, err := c1.Read(make([]byte, 1)); err != nil {
			return err
		}
		c2, err := net.DialTimeout("tcp4", dst, 5*time.Second)
		if err != nil {
			return err
		}
		defer c2.Close()
		c2.SetDeadline(time.Now().Add(20 * time.Second))
		io.WriteString(c2, os.Getenv(reqEnv))
		c2.(*net.TCPConn).CloseWrite()
		_, err = io.Copy(os.Stdout, c2)
		return err
	case "http":
		// GETs each path of MSP_REQ (space-separated) over one keep-alive
		// connection with net/http; prints "status body-length" lines.
		tr := &http.Transport{Proxy: nil, MaxConnsPerHost: 1}
		cl := &http.Client{Transport: tr, Timeout: 20 * time.Second}
		for _, path := range strings.Fields(os.Getenv(reqEnv)) {
			req, _ := http.NewRequest("GET", "http://"+dst+path, nil)
			req.Header.Set("Metadata", "true")
			resp, err := cl.Do(req)
			if err != nil {
				return err
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			fmt.Printf("%d %d %s\n", resp.StatusCode, len(b), resp.Header.Get("x-ms-azure-proxy-reason"))
		}
		return nil
	case "upload":
		// PUT /vmAgentLog with a chunked 5 MB body after Expect:
		// 100-continue; prints the status and the body's SHA-256.
		const size, piece = 5 << 20, 64 << 10
		fill := func(i int, chunk []byte) {
			for j := range chunk {
				chunk[j] = byte(i + j)
			}
		}
		pr, pw := io.Pipe()
		go func() {
			chunk := make([]byte, piece)
			for i := 0; i < size/piece; i++ {
				fill(i, chunk)
				if _, err := pw.Write(chunk); err != nil {
					return
				}
			}
			pw.Close()
		}()
		h := sha256.New()
		chunk := make([]byte, piece)
		for i := 0; i < size/piece; i++ {
			fill(i, chunk)
			h.Write(chunk)
		}
		req, _ := http.NewRequest("PUT", "http://"+dst+"/vmAgentLog", pr)
		req.ContentLength = -1 // chunked
		// The proxy answers 100 Continue once the request is authorized,
		// and a refusal before a body byte is sent.
		req.Header.Set("Expect", "100-continue")
		tr := &http.Transport{Proxy: nil, ExpectContinueTimeout: 10 * time.Second}
		resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%d %s %s\n", resp.StatusCode, hex.EncodeToString(h.Sum(nil)), b)
		return nil
	case "azidentity":
		// Gets a managed-identity token; the SDK dials the real IMDS
		// address, mapped to MSP_DST (the test's IMDS address, which the
		// redirector sends to the proxy).
		for _, v := range []string{"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT", "MSI_ENDPOINT", "MSI_SECRET", "AZURE_CLIENT_ID"} {
			os.Unsetenv(v)
		}
		var d net.Dialer
		tr := &http.Transport{Proxy: nil, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr != "169.254.169.254:80" {
				return nil, fmt.Errorf("test dialer: %s is not mapped", addr)
			}
			return d.DialContext(ctx, "tcp4", dst)
		}}
		cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
			ClientOptions: azcore.ClientOptions{Transport: &http.Client{Transport: tr}, Retry: policy.RetryOptions{MaxRetries: -1}},
		})
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{fmt.Sprintf("api://proxy-test-%d/.default", time.Now().UnixNano())}})
		if err != nil {
			return err
		}
		fmt.Printf("token %d bytes, expires in %.0fh\n", len(tok.Token), time.Until(tok.ExpiresOn).Hours())
		return nil
	}
	return fmt.Errorf("unknown client mode %q", mode)
}

func rawExchange(dst, req string) error {
	c, err := net.DialTimeout("tcp4", dst, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		return err
	}
	c.(*net.TCPConn).CloseWrite()
	_, err = io.Copy(os.Stdout, c)
	return err
}
