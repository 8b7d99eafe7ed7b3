package reliability

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	// A client child is this test binary again, told its work by the
	// environment (see client_test.go).
	if spec := os.Getenv(clientEnv); spec != "" {
		if err := clientMain(spec, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "client:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	raiseOpenFiles()
	code := m.Run()
	removeClientBinary()
	os.Exit(code)
}

// raiseOpenFiles lifts RLIMIT_NOFILE (soft and, as root, hard) to 65536 so
// that the flood clients and the agent, which inherit it, can hold their
// connections on machines whose default hard limit is lower. Failure
// leaves the limit as it was; the flood cases then report dial errors.
func raiseOpenFiles() {
	const want = 1 << 16
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur >= want {
		return
	}
	lim.Cur = want
	lim.Max = max(lim.Max, want)
	if unix.Setrlimit(unix.RLIMIT_NOFILE, &lim) != nil {
		unix.Getrlimit(unix.RLIMIT_NOFILE, &lim)
		lim.Cur = lim.Max
		unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	}
}
