package osgate

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Supported lists the distributions, as os-release ID and the
// VERSION_IDs accepted: an exact list, or a minimum.
var Supported = []Distro{
	{ID: "debian", Name: "Debian", Versions: []string{"11", "12"}},
	{ID: "ubuntu", Name: "Ubuntu", Versions: []string{"20.04", "22.04", "24.04"}},
	{ID: "rhel", Name: "Red Hat Enterprise Linux", Major: "9"},
	{ID: "rocky", Name: "Rocky Linux", Major: "9"},
	{ID: "almalinux", Name: "AlmaLinux", Major: "9"},
	{ID: "sles", Name: "SUSE Linux Enterprise Server", MinVersion: "15.4", Major: "15"},
	{ID: "mariner", Name: "Azure Linux 2 (CBL-Mariner)", Major: "2"},
	{ID: "azurelinux", Name: "Azure Linux 3", Major: "3"},
}

// Distro is one supported distribution.
type Distro struct {
	ID       string
	Name     string
	Versions []string // exact VERSION_IDs; empty means any with Major
	Major    string   // the VERSION_ID's major number must be this
	// MinVersion is the lowest VERSION_ID (dotted, compared numerically)
	// within Major.
	MinVersion string
}

func (d Distro) accepts(version string) bool {
	if len(d.Versions) > 0 {
		for _, v := range d.Versions {
			if v == version {
				return true
			}
		}
		return false
	}
	if major, _, _ := strings.Cut(version, "."); major != d.Major {
		return false
	}
	return d.MinVersion == "" || compareVersions(version, d.MinVersion) >= 0
}

// compareVersions compares dotted numeric versions ("15.4" < "15.10").
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(as), len(bs)); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// UnsupportedError says why this machine is not supported.
type UnsupportedError struct {
	Reason string
}

func (e *UnsupportedError) Error() string { return "OS version not supported: " + e.Reason }

// ParseOSRelease reads the KEY=value pairs of an os-release file.
func ParseOSRelease(data []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		} else {
			v = strings.Trim(v, `"'`)
		}
		out[k] = v
	}
	return out
}

// CheckDistro accepts a supported distribution.
func CheckDistro(osRelease []byte) error {
	rel := ParseOSRelease(osRelease)
	id, version := strings.ToLower(rel["ID"]), rel["VERSION_ID"]
	for _, d := range Supported {
		if d.ID == id {
			if d.accepts(version) {
				return nil
			}
			return &UnsupportedError{Reason: fmt.Sprintf("%s %s is not supported (supported: %s)", d.Name, version, List())}
		}
	}
	name := rel["PRETTY_NAME"]
	if name == "" {
		name = strings.TrimSpace(id + " " + version)
	}
	return &UnsupportedError{Reason: fmt.Sprintf("%q is not supported (supported: %s)", name, List())}
}

// List is the supported distributions in words, for messages and README.
func List() string {
	parts := make([]string, len(Supported))
	for i, d := range Supported {
		switch {
		case len(d.Versions) > 0:
			parts[i] = d.Name + " " + strings.Join(d.Versions, ", ")
		case d.MinVersion != "":
			parts[i] = d.Name + " " + d.MinVersion + " or later " + d.Major
		default:
			parts[i] = d.Name + " " + d.Major
		}
	}
	return strings.Join(parts, "; ")
}

// Check runs the distribution check, then the kernel probe.
func Check(osRelease []byte, probeKernel func() error) error {
	if err := CheckDistro(osRelease); err != nil {
		return err
	}
	if err := probeKernel(); err != nil {
		return &UnsupportedError{Reason: "the kernel cannot run the agent: " + err.Error()}
	}
	return nil
}
