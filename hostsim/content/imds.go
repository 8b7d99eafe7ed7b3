package content

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mspguest/msp/agent/rawhttp"
)

// imdsError answers like IMDS does: 400 with {"error": ...}.
func imdsError(status int, msg string) Response {
	b, _ := json.Marshal(map[string]any{"error": msg})
	return JSON(status, b)
}

// IMDS answers the IMDS endpoints at host time now. Like the real service it
// requires "Metadata: true", refuses proxied requests (X-Forwarded-For) and
// validates api-version.
func IMDS(req *rawhttp.Request, now time.Time) Response {
	path, q := targetParts(req.Target)
	path = strings.TrimSuffix(path, "/")
	isToken := path == "/metadata/identity/oauth2/token"
	if v, ok := req.Get("Metadata"); !ok || !strings.EqualFold(v, "true") {
		if isToken {
			return tokenError(400, "invalid_request", "Required metadata header not specified")
		}
		return imdsError(400, "Bad request. Required metadata header not specified")
	}
	if _, ok := req.Get("X-Forwarded-For"); ok {
		return imdsError(400, "Bad request. Request contains a X-Forwarded-For header")
	}
	if req.Method != "GET" {
		return imdsError(405, "Method not allowed. Use GET")
	}
	if path == "/metadata/versions" {
		b, _ := json.Marshal(map[string]any{"apiVersions": imdsAPIVersions})
		return JSON(200, b)
	}
	if !strings.HasPrefix(path, "/metadata/") {
		return imdsError(404, "Not found")
	}
	version := q.Get("api-version")
	known := imdsAPIVersions
	if path == "/metadata/scheduledevents" {
		known = scheduledEventsAPIVersions // Scheduled Events has its own versions
	}
	if !slices.Contains(known, version) {
		b, _ := json.Marshal(map[string]any{
			"error":           "Bad request. api-version is invalid or was not specified in the request. For more information refer to aka.ms/azureimds",
			"newest-versions": newestVersions(),
		})
		return JSON(400, b)
	}
	switch {
	case isToken:
		return serveToken(q, now)
	case path == "/metadata/instance" || strings.HasPrefix(path, "/metadata/instance/"):
		return serveInstance(strings.TrimPrefix(path, "/metadata/instance"), version, q.Get("format"))
	case path == "/metadata/scheduledevents":
		return JSON(200, []byte(`{"DocumentIncarnation":0,"Events":[]}`))
	case path == "/metadata/attested/document":
		return serveAttested(q.Get("nonce"))
	}
	return imdsError(404, "Not found")
}

func newestVersions() []string {
	n := len(imdsAPIVersions)
	return []string{imdsAPIVersions[n-1], imdsAPIVersions[n-2], imdsAPIVersions[n-3]}
}

// serveInstance answers /metadata/instance and its sub-paths: JSON by
// default, format=text for a leaf value or the key listing of a node.
func serveInstance(sub, version, format string) Response {
	var doc any
	if err := json.Unmarshal([]byte(instanceMetadata), &doc); err != nil {
		panic(fmt.Sprintf("hostsim: instance metadata: %v", err)) // constant document
	}
	compute := doc.(map[string]any)["compute"].(map[string]any)
	for field, since := range computeFieldSince {
		if version < since {
			delete(compute, field)
		}
	}
	node := doc
	for _, seg := range strings.Split(strings.Trim(sub, "/"), "/") {
		if seg == "" {
			continue
		}
		switch n := node.(type) {
		case map[string]any:
			node = n[seg]
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(n) {
				node = nil
			} else {
				node = n[i]
			}
		default:
			node = nil
		}
		if node == nil {
			return imdsError(404, "Not found")
		}
	}
	switch format {
	case "", "json":
		b, _ := json.Marshal(node)
		return JSON(200, b)
	case "text":
		return Response{Status: 200, ContentType: "text/plain; charset=utf-8", Body: []byte(textOf(node))}
	}
	return imdsError(400, fmt.Sprintf("Bad request. format %q is not supported: use json or text", format))
}

// textOf renders a leaf as its value and a node as its keys (objects with
// a trailing "/"), one per line, like IMDS's format=text.
func textOf(node any) string {
	switch n := node.(type) {
	case map[string]any:
		keys := make([]string, 0, len(n))
		for k, v := range n {
			switch v.(type) {
			case map[string]any, []any:
				k += "/"
			}
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return strings.Join(keys, "\n")
	case []any:
		idx := make([]string, len(n))
		for i := range n {
			idx[i] = strconv.Itoa(i) + "/"
		}
		return strings.Join(idx, "\n")
	case string:
		return n
	}
	b, _ := json.Marshal(node)
	return string(b)
}

func tokenError(status int, code, desc string) Response {
	b, _ := json.Marshal(map[string]string{"error": code, "error_description": desc})
	return JSON(status, b)
}

// serveToken answers the managed-identity token request in the shape
// azidentity's ManagedIdentityCredential (MSAL) parses: numbers as strings,
// expires_on a Unix time.
func serveToken(q url.Values, now time.Time) Response {
	resource := q.Get("resource")
	if resource == "" {
		return tokenError(400, "invalid_request", "Required audience parameter not specified")
	}
	clientID := identityClientID
	for _, p := range []string{"client_id", "object_id", "msi_res_id", "mi_res_id"} {
		if v := q.Get(p); v != "" {
			if p != "client_id" || v != identityClientID {
				return tokenError(400, "invalid_request", "Identity not found")
			}
		}
	}
	const lifetime = 86399
	exp := now.Unix() + lifetime
	claims, _ := json.Marshal(map[string]any{
		"aud": resource, "iss": "https://sts.windows.net/hostsim/", "iat": now.Unix(),
		"nbf": now.Unix(), "exp": exp, "appid": clientID, "sub": identityClientID,
	})
	enc := base64.RawURLEncoding
	token := enc.EncodeToString([]byte(`{"typ":"JWT","alg":"none"}`)) + "." + enc.EncodeToString(claims) + "." + enc.EncodeToString([]byte("hostsim-unsigned"))
	b, _ := json.Marshal(map[string]string{
		"access_token":   token,
		"client_id":      clientID,
		"expires_in":     strconv.Itoa(lifetime),
		"expires_on":     strconv.FormatInt(exp, 10),
		"ext_expires_in": strconv.Itoa(lifetime),
		"not_before":     strconv.FormatInt(now.Unix(), 10),
		"resource":       resource,
		"token_type":     "Bearer",
	})
	return JSON(200, b)
}

// serveAttested answers /metadata/attested/document. The signature is a
// base64 blob, not a real PKCS#7 envelope: guests must not trust it.
func serveAttested(nonce string) Response {
	if nonce == "" {
		nonce = "20250101-000000"
	}
	inner, _ := json.Marshal(map[string]any{"nonce": nonce, "vmId": "5c08b38e-4d57-4c23-ac45-aca61037f084", "subscriptionId": "00000000-1111-2222-3333-444444444444", "sku": "server"})
	b, _ := json.Marshal(map[string]string{"encoding": "pkcs7", "signature": base64.StdEncoding.EncodeToString(inner)})
	return JSON(200, b)
}
