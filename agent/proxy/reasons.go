package proxy

import (
	"github.com/mspguest/msp/agent/authz"
	"github.com/mspguest/msp/agent/endorse"
	"github.com/mspguest/msp/agent/rawhttp"
)

// Reason codes of authorization.md §9 that the proxy answers with in
// x-ms-azure-proxy-reason. The authorizer's codes are authz.Reason*; the
// request reader's are rawhttp.Reason*; these are the proxy's own.
const (
	ReasonMethodNotAllowed    = "method-not-allowed"
	ReasonMisdirected         = "misdirected"
	ReasonNoKey               = "no-key"
	ReasonUpstreamUnavailable = "upstream-unavailable"
	ReasonUpstreamTimeout     = "upstream-timeout"
	ReasonOverloaded          = "overloaded"
	// ReasonForbidden answers /gpa-aggregated-status without an elevated,
	// redirected caller (agent.md §4).
	ReasonForbidden = "forbidden"
	// ReasonBadAgentHeader is endorse's 502 for an invalid agent value.
	ReasonBadAgentHeader = "bad-agent-header"
)

// Reasons lists every code the proxy can send, with its status, for the
// README table and its test.
var Reasons = []struct {
	Code   string
	Status int
}{
	{string(authz.ReasonRootRequired), 403},
	{string(authz.ReasonIdentityMismatch), 403},
	{string(authz.ReasonAmbiguousQuery), 403},
	{string(authz.ReasonDefaultDeny), 403},
	{string(authz.ReasonLocalRulesFailed), 403},
	{string(authz.ReasonPathRejected), 403},
	{rawhttp.ReasonBadRequestLine, 400},
	{rawhttp.ReasonBadHeader, 400},
	{rawhttp.ReasonBadFraming, 400},
	{rawhttp.ReasonBadBody, 400},
	{rawhttp.ReasonHeaderTooLarge, 431},
	{endorse.ReasonExpectationFailed, 417},
	{ReasonMethodNotAllowed, 405},
	{ReasonMisdirected, 421},
	{ReasonForbidden, 403},
	{rawhttp.ReasonBodyTooLarge, 413},
	{ReasonNoKey, 503},
	{ReasonBadAgentHeader, 502},
	{ReasonUpstreamUnavailable, 502},
	{ReasonUpstreamTimeout, 504},
	{ReasonOverloaded, 503},
}
