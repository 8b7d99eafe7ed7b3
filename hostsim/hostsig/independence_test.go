package hostsig

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestSharesNoCodeWithTheAgent: the oracle (this package) and the
// emulator's reader (package wire) import nothing from agent/, so an
// agent bug cannot be repeated by the check meant to catch it.
func TestSharesNoCodeWithTheAgent(t *testing.T) {
	for _, dir := range []string{".", "../wire"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: %v", dir, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue // tests compare with the agent on purpose
			}
			file, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range file.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				if strings.HasPrefix(p, "github.com/mspguest/msp/") {
					t.Errorf("%s imports %s; the host's implementation must stand alone", f, p)
				}
			}
		}
	}
}
