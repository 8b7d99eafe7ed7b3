package hostproto

// AuthorizationItem is one endpoint's policy as carried by the host payload
// (authorizationRules.{imds,wireserver,hostga}), an ARM InVMAccessControlProfile
// or, without Mode, a local rule file (authorization.md §2).
type AuthorizationItem struct {
	// DefaultAccess is "allow" or "deny" (case-insensitive); anything else
	// is read as deny.
	DefaultAccess string `json:"defaultAccess"`
	// Mode is "disabled", "audit" or "enforce" (case-insensitive); an
	// unknown value is enforced.
	Mode string `json:"mode,omitempty"`
	// ID is an opaque profile id or a base64 descriptor enabling local rule
	// files (authorization.md §6.1).
	ID string `json:"id"`
	// Rules is optional; nil means no privileges, so every decision falls
	// to DefaultAccess.
	Rules *Rules `json:"rules,omitempty"`
}

// Rules is the RBAC graph of an AuthorizationItem. A nil slice means the
// array was missing (or null) in the JSON; an empty slice means it was [].
// GPA builds privileges only when all four arrays are present.
type Rules struct {
	Privileges      []Privilege      `json:"privileges"`
	Roles           []Role           `json:"roles"`
	Identities      []Identity       `json:"identities"`
	RoleAssignments []RoleAssignment `json:"roleAssignments"`
}

// Complete reports whether all four arrays are present.
func (r *Rules) Complete() bool {
	return r != nil && r.Privileges != nil && r.Roles != nil && r.Identities != nil && r.RoleAssignments != nil
}

// Privilege names a path prefix (whole segments) and optional required query
// parameters.
type Privilege struct {
	Name            string            `json:"name"`
	Path            string            `json:"path"`
	QueryParameters map[string]string `json:"queryParameters,omitempty"`
}

// Role is a named group of privileges.
type Role struct {
	Name       string   `json:"name"`
	Privileges []string `json:"privileges"`
}

// Identity selects callers. Every selector that is present must match
// (logical AND); a nil selector is absent. An empty but present selector
// matches only an empty value, which no real caller has.
type Identity struct {
	Name        string  `json:"name"`
	UserName    *string `json:"userName,omitempty"`
	GroupName   *string `json:"groupName,omitempty"`
	ExePath     *string `json:"exePath,omitempty"`
	ProcessName *string `json:"processName,omitempty"`
}

// RoleAssignment grants a role's privileges to identities.
type RoleAssignment struct {
	Role       string   `json:"role"`
	Identities []string `json:"identities"`
}

// AuthorizationRules holds the per-endpoint items of a v2 payload.
type AuthorizationRules struct {
	IMDS       *AuthorizationItem `json:"imds,omitempty"`
	WireServer *AuthorizationItem `json:"wireserver,omitempty"`
	HostGA     *AuthorizationItem `json:"hostga,omitempty"`
}
