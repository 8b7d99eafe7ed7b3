package identity

import "github.com/mspguest/msp/agent/authz"

// Caller is who made one redirected connection. Every string field is
// empty when it is unknown or could not be trusted: an empty selector
// value never matches (authorization.md §4.3).
type Caller struct {
	UID  uint32 // real uid, from the kernel record
	GID  uint32 // real gid, from the kernel record
	PID  int32  // tgid, from the kernel record
	Comm string // task comm, from the kernel record (informational only)
	// Root is true only when the real and the effective uid are both 0.
	Root bool
	// UserName is the name of UID in the user database.
	UserName string
	// Groups are the names of the primary and supplementary groups of the
	// process (/proc/<tgid>/status Groups:).
	Groups []string
	// ExePath and ProcessName are the executable and its file name, set
	// only when /proc/<tgid>/exe is the file the kernel saw at connect().
	ExePath     string
	ProcessName string
	// CmdLine is the first 4 arguments joined with spaces, secrets
	// redacted.
	CmdLine string
}

// Authz returns the fields the matcher reads.
func (c *Caller) Authz() authz.Caller {
	return authz.Caller{
		UID:         c.UID,
		UserName:    c.UserName,
		Groups:      c.Groups,
		ExePath:     c.ExePath,
		ProcessName: c.ProcessName,
		PID:         c.PID,
		Root:        c.Root,
	}
}
