package osgate

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestCheckDistro(t *testing.T) {
	for _, tc := range []struct {
		name, release string
		ok            bool
	}{
		{"debian 12", "ID=debian\nVERSION_ID=\"12\"\n", true},
		{"debian 10", "ID=debian\nVERSION_ID=\"10\"\n", false},
		{"ubuntu 22.04", "ID=ubuntu\nVERSION_ID=\"22.04\"", true},
		{"ubuntu 23.10", "ID=ubuntu\nVERSION_ID=\"23.10\"", false},
		{"rhel 9.4", "ID=\"rhel\"\nVERSION_ID=\"9.4\"", true},
		{"rhel 8.9", "ID=\"rhel\"\nVERSION_ID=\"8.9\"", false},
		{"rocky 9", "ID=\"rocky\"\nVERSION_ID=\"9.3\"", true},
		{"alma 9", "ID=\"almalinux\"\nVERSION_ID=\"9.5\"", true},
		{"sles 15 sp4", "ID=\"sles\"\nVERSION_ID=\"15.4\"", true},
		{"sles 15 sp10", "ID=\"sles\"\nVERSION_ID=\"15.10\"", true},
		{"sles 15 sp3", "ID=\"sles\"\nVERSION_ID=\"15.3\"", false},
		{"mariner 2", "ID=mariner\nVERSION_ID=\"2.0\"", true},
		{"azure linux 3", "ID=azurelinux\nVERSION_ID=\"3.0\"", true},
		{"arch", "ID=arch\nPRETTY_NAME=\"Arch Linux\"", false},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckDistro([]byte(tc.release))
			if (err == nil) != tc.ok {
				t.Fatalf("got %v; want ok=%v", err, tc.ok)
			}
			var ue *UnsupportedError
			if err != nil && (!errors.As(err, &ue) || !strings.Contains(err.Error(), "supported: Debian 11, 12")) {
				t.Fatalf("got %v; want the supported list named", err)
			}
		})
	}
}

func TestCheckNamesTheKernelFeature(t *testing.T) {
	deb := []byte("ID=debian\nVERSION_ID=\"12\"")
	err := Check(deb, func() error { return errors.New("kernel lacks helper bpf_get_netns_cookie") })
	if err == nil || !strings.Contains(err.Error(), "bpf_get_netns_cookie") {
		t.Fatalf("got %v", err)
	}
	if err := Check(deb, func() error { return nil }); err != nil {
		t.Fatal(err)
	}
}

// TestProbeKernel runs the real probes: CI and this machine are root on a
// kernel that has every feature.
func TestProbeKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the eBPF probes need root")
	}
	if err := ProbeKernel(); err != nil {
		t.Fatal(err)
	}
}

func FuzzCheckDistro(f *testing.F) {
	f.Add([]byte("ID=debian\nVERSION_ID=\"12\"\n"))
	f.Add([]byte("ID=sles\nVERSION_ID=15.\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = CheckDistro(data)
	})
}
