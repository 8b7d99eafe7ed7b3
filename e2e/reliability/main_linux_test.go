package reliability

import (
	"fmt"
	"os"
	"testing"
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
	code := m.Run()
	removeClientBinary()
	os.Exit(code)
}
