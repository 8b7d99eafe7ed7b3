package targettest

import "github.com/mspguest/msp/agent/hostproto"

// Spelling is a request-target that aims at /metadata/identity.
type Spelling struct {
	Target string
	// Refused: authz.CheckTarget refuses it (400 bad-request-line when
	// Raw, else 403 path-rejected). Otherwise it passes the strict reading
	// and the matcher reads it as a path under /metadata/identity.
	Refused bool
	Raw     bool
	Note    string
}

// Spellings returns the spellings, a fresh slice on each call.
func Spellings() []Spelling {
	raw := func(t, note string) Spelling { return Spelling{Target: t, Refused: true, Raw: true, Note: note} }
	rej := func(t, note string) Spelling { return Spelling{Target: t, Refused: true, Note: note} }
	ok := func(t, note string) Spelling { return Spelling{Target: t, Note: note} }
	const tok = "/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F"
	return []Spelling{
		// Raw bytes outside RFC 3986 path and query characters.
		raw(`/metadata\identity`+tok, "backslash, read as / by Windows"),
		raw(`/metadata/identity\`+tok, "trailing backslash"),
		raw("/metadata/identity /oauth2/token", "raw space"),
		raw("/metadata/identity\t/oauth2/token", "raw tab"),
		raw("/metadata/identity\x00/oauth2/token", "raw NUL"),
		raw("/metadata/identity\x7f/oauth2/token", "raw DEL"),
		raw("/metadata/identity#/oauth2/token", "raw #"),
		raw(`/metadata/identity"/oauth2/token`, `raw "`),
		raw("/metadata/identity<x>/oauth2/token", "raw < >"),
		raw("/metadata/{identity}/oauth2/token", "raw { }"),
		raw("/metadata/identity|/oauth2/token", "raw |"),
		raw("/metadata/identity^/oauth2/token", "raw ^"),
		raw("/metadata/identity`/oauth2/token", "raw backtick"),
		raw("/metadata/identity[0]/oauth2/token", "raw [ ]"),
		raw("/metadata/\uff49dentity"+tok, "raw fullwidth i"),
		raw("/metadata\uff0fidentity"+tok, "raw fullwidth solidus"),
		raw("/metadata/identity\xff/oauth2/token", "raw byte 0xff"),
		raw("/metadata/identity/oauth2/token?resource=a b", "raw space in the query"),
		raw("metadata/identity/oauth2/token", "not origin form"),
		// Escapes the host decodes and we would not, or the other way.
		rej("/metadata%5Cidentity"+tok, "encoded backslash"),
		rej("/metadata%5cidentity"+tok, "encoded backslash, lower case"),
		rej("/metadata/%u0069dentity"+tok, "IIS %u escape of i"),
		rej("/metadata/%U0069dentity"+tok, "IIS %U escape of i"),
		rej("/metadata/%u0069%u0064entity"+tok, "two IIS escapes"),
		rej("/metadata%u002fidentity"+tok, "IIS escape of /"),
		rej("/metadata%u005cidentity"+tok, "IIS escape of backslash"),
		rej("/metadata/instance/%u002e%u002e/identity"+tok, "IIS escapes of .. (granted-instance bypass)"),
		rej("/metadata/identity%"+tok, "lone %"),
		rej("/metadata/identity%2/oauth2/token", "% with one hex digit"),
		rej("/metadata/identity%zz/oauth2/token", "% with no hex digit"),
		rej("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=%u0068ttps", "IIS escape in a query value"),
		rej("/metadata/identity/oauth2/token?%u0061pi-version=2018-02-01", "IIS escape in a query name"),
		// Decoded bytes >= 0x80: overlong and look-alike encodings.
		rej("/metadata%c0%afidentity"+tok, "overlong / (2 bytes)"),
		rej("/metadata%e0%80%afidentity"+tok, "overlong / (3 bytes)"),
		rej("/metadata%f0%80%80%afidentity"+tok, "overlong / (4 bytes)"),
		rej("/metadata%c0%5cidentity"+tok, "broken overlong backslash"),
		rej("/metadata/%c1%a9dentity"+tok, "overlong i"),
		rej("/metadata%ef%bc%8fidentity"+tok, "fullwidth solidus, encoded"),
		rej("/metadata/%ef%bd%89dentity"+tok, "fullwidth i, encoded"),
		rej("/metadata/%EF%BD%89DENTITY"+tok, "fullwidth I, upper-case escapes"),
		rej("/metadata/%c4%b1dentity"+tok, "dotless i (upper-cases to I)"),
		rej("/metadata/%e2%80%aeidentity"+tok, "right-to-left override"),
		rej("/metadata/identity%e3%80%82/oauth2/token", "ideographic full stop"),
		rej("/metadata/identity%c0%ae/oauth2/token", "overlong . at the end of a segment"),
		rej("/metadata/instance/%c0%ae%c0%ae/identity"+tok, "overlong .."),
		rej("/metadata/instance/%e0%80%ae%e0%80%ae/identity"+tok, "overlong .. (3 bytes)"),
		rej("/metadata/identity/oauth2/token?resource=%c0%af", "byte >= 0x80 in a query value"),
		rej("/metadata/identity/oauth2/token?%ef%bd%81pi-version=2018-02-01", "fullwidth a in a query name"),
		// Double encoding.
		rej("/metadata/%2569dentity"+tok, "%25 then 69"),
		rej("/metadata%252Fidentity"+tok, "double-encoded /"),
		rej("/metadata%255Cidentity"+tok, "double-encoded backslash"),
		rej("/metadata/instance/%252e%252e/identity"+tok, "double-encoded .."),
		rej("/metadata/identity%252e/oauth2/token", "double-encoded trailing ."),
		rej("/metadata/identity%2520/oauth2/token", "double-encoded trailing space"),
		rej("/metadata/identity%3Fx=%2525", "double encoding in an embedded query"),
		// Segments that end in a dot or a space (Windows strips them).
		rej("/metadata/identity."+tok, "trailing dot"),
		rej("/metadata/identity.."+tok, "two trailing dots"),
		rej("/metadata/identity%2e"+tok, "encoded trailing dot"),
		rej("/metadata/identity%2E"+tok, "encoded trailing dot, upper case"),
		rej("/metadata/identity%20"+tok, "trailing space"),
		rej("/metadata/identity%20%20"+tok, "two trailing spaces"),
		rej("/metadata/identity.%20"+tok, "dot and space"),
		rej("/metadata/identity%20."+tok, "space and dot"),
		rej("/metadata/identity.;x"+tok, "trailing dot before ;params"),
		rej("/metadata/identity;x."+tok, "trailing dot after ;params"),
		rej("/metadata/identity/oauth2/token.", "trailing dot in the last segment"),
		rej("/metadata/identity/oauth2/token%20?api-version=2018-02-01", "trailing space in the last segment"),
		rej("/metadata/identity.%3Fapi-version=2018-02-01", "trailing dot before an embedded query"),
		// Dot segments, empty segments, control characters (I-4, I-5, I-7).
		rej("/metadata/instance/../identity"+tok, ".."),
		rej("/metadata/instance/%2e%2e/identity"+tok, "encoded .."),
		rej("/metadata/instance/.%2E/identity"+tok, "half-encoded .."),
		rej("/metadata/./identity"+tok, ". segment"),
		rej("/metadata/%2e/identity"+tok, "encoded . segment"),
		rej("/metadata//identity"+tok, "raw //"),
		rej("/metadata/%2Fidentity"+tok, "decoded //"),
		rej("/metadata/identity%00/oauth2/token", "encoded NUL"),
		rej("/metadata/identity%09/oauth2/token", "encoded tab"),
		rej("/metadata/identity%7F/oauth2/token", "encoded DEL"),
		// Accepted by the strict reading; the matcher reads them as
		// /metadata/identity/... and so denies alice.
		ok("/METADATA/IDENTITY/oauth2/token", "upper case"),
		ok("/Metadata/Identity/OAuth2/Token"+tok[len("/oauth2/token"):], "mixed case"),
		ok("/metadata/%69dentity"+tok, "encoded letter"),
		ok("/metadata/identit%79"+tok, "encoded last letter"),
		ok("/metadata%2Fidentity"+tok, "encoded slash"),
		ok("/metadata%2fidentity/oauth2%2ftoken", "encoded slashes, lower case"),
		ok("/metadata/identity;x"+tok, ";params"),
		ok("/metadata/identity%3Bx/oauth2/token", "encoded ;params"),
		ok("/metadata/identity%3Fapi-version=2018-02-01", "embedded query"),
		ok("/metadata/identity/", "trailing slash"),
	}
}

// Legitimate is a request-target a real client sends.
type Legitimate struct {
	Endpoint hostproto.Endpoint
	Method   string
	Target   string
	Source   string
}

// Legitimates returns the legitimate targets, a fresh slice on each call.
func Legitimates() []Legitimate {
	const (
		container = "8d5a0a0d-3b94-4ac2-a4c3-5f0c1e3e2c77"
		role      = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0.vm0"
		armID     = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/my-rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/my-id"
		armIDEnc  = "%2Fsubscriptions%2F00000000-0000-0000-0000-000000000000%2FresourceGroups%2Fmy-rg%2Fproviders%2FMicrosoft.ManagedIdentity%2FuserAssignedIdentities%2Fmy-id"
	)
	imds := func(t, src string) Legitimate { return Legitimate{hostproto.IMDS, "GET", t, src} }
	wire := func(m, t, src string) Legitimate { return Legitimate{hostproto.WireServer, m, t, src} }
	hga := func(m, t, src string) Legitimate { return Legitimate{hostproto.HostGAPlugin, m, t, src} }
	return []Legitimate{
		imds("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F", "Azure docs, curl"),
		imds("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net", "Azure docs"),
		imds("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com", "azidentity"),
		imds("/metadata/identity/oauth2/token?api-version=2018-02-01&client_id=12345678-1234-1234-1234-123456789012&resource=https%3A%2F%2Fstorage.azure.com", "azidentity, client id"),
		imds("/metadata/identity/oauth2/token?api-version=2018-02-01&msi_res_id="+armIDEnc+"&resource=https%3A%2F%2Fmanagement.azure.com", "azidentity, resource id"),
		imds("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F&mi_res_id="+armIDEnc, "Azure docs, mi_res_id encoded"),
		imds("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/&mi_res_id="+armID, "Azure docs, mi_res_id"),
		imds("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F&object_id=87654321-4321-4321-4321-210987654321", "Azure docs, object_id"),
		imds("/metadata/identity/oauth2/token?api-version=2019-08-01&resource=api%3A%2F%2FAzureADTokenExchange", "token exchange audience"),
		imds("/metadata/identity/info?api-version=2018-02-01", "identity info"),
		imds("/metadata/instance?api-version=2021-02-01", "Azure docs"),
		imds("/metadata/instance/compute?api-version=2021-02-01&format=json", "Azure docs"),
		imds("/metadata/instance/compute/location?api-version=2017-08-01&format=text", "Azure docs"),
		imds("/metadata/instance/network/interface/0/ipv4/ipAddress/0/publicIpAddress?api-version=2017-08-01&format=text", "Azure docs"),
		imds("/metadata/instance/compute/userData?api-version=2021-01-01&format=text", "Azure docs"),
		imds("/metadata/instance/compute/tagsList?api-version=2019-06-04", "Azure docs"),
		imds("/metadata/scheduledevents?api-version=2020-07-01", "Azure docs"),
		imds("/metadata/scheduledevents%3Fapi-version=2019-08-01", "VmssRuntimeAgent (authorization.md §7.1)"),
		imds("/metadata/attested/document?api-version=2020-09-01&nonce=1234", "Azure docs"),
		imds("/metadata/loadbalancer?api-version=2020-10-01", "Azure docs"),
		imds("/metadata/versions", "Azure docs"),
		imds("/metadata/instance/compute?api-version=2021-02-01&$select=vmId", "$ in a query name"),
		wire("GET", "/?comp=versions", "waagent"),
		wire("GET", "/machine?comp=versions", "waagent"),
		wire("GET", "/machine/?comp=goalstate", "waagent"),
		wire("GET", "/machine/"+container+"/"+role+"?comp=config&type=hostingEnvironmentConfig&incarnation=1", "waagent"),
		wire("GET", "/machine/"+container+"/"+role+"?comp=config&type=sharedConfig&incarnation=1", "waagent"),
		wire("GET", "/machine/"+container+"/"+role+"?comp=config&type=extensionsConfig&incarnation=1", "waagent"),
		wire("GET", "/machine/"+container+"/"+role+"?comp=certificates&incarnation=1", "waagent"),
		wire("POST", "/machine?comp=health", "waagent"),
		wire("POST", "/machine/?comp=telemetrydata", "waagent (exempt)"),
		wire("POST", "/machine/?comp=roleProperties", "waagent"),
		hga("GET", "/vmSettings", "waagent"),
		hga("GET", "/extensionArtifact", "waagent"),
		hga("PUT", "/status", "waagent"),
		hga("GET", "/health", "waagent"),
		hga("PUT", "/vmAgentLog", "waagent (exempt)"),
		hga("GET", "/versions", "HostGAPlugin"),
		hga("GET", "/.well-known/x", ".well-known segment"),
	}
}
