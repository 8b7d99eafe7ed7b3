package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// The zip and deb commands wire their flags to the writers.
func TestRunZipAndDeb(t *testing.T) {
	root := repoRoot(t)
	bins := standinBins(t, filepath.Join(t.TempDir(), "calls"), []string{"amd64", "arm64"}, zipBinaries)
	out := t.TempDir()
	env := func(k string) string {
		if k == "SOURCE_DATE_EPOCH" {
			return "1767323046"
		}
		return ""
	}
	common := []string{"-bins", bins, "-out", out, "-ext", filepath.Join(root, "extension.json"),
		"-unit", filepath.Join(root, "agent", "unitfile", "msp-agent.service")}
	var stdout bytes.Buffer
	zipArgs := append([]string{"zip", "-handler-manifest", handlerManifestPath(t),
		"-schemas", filepath.Join(root, "agent", "authz", "rulefile", "schema")}, common...)
	if err := run(context.Background(), zipArgs, &stdout, env); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), append([]string{"deb"}, common...), &stdout, env); err != nil {
		t.Fatal(err)
	}
	id, err := readIdentity(filepath.Join(root, "extension.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		filepath.Join(out, id.zipName()),
		filepath.Join(out, "msp-agent_"+id.Version+"_amd64.deb"),
		filepath.Join(out, "msp-agent_"+id.Version+"_arm64.deb"),
	}, "\n") + "\n"
	if stdout.String() != want {
		t.Errorf("printed %q; want %q", stdout.String(), want)
	}
}

func TestRunRejectsBadInput(t *testing.T) {
	root := repoRoot(t)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no command", nil, nil, "no command: want build"},
		{"unknown command", []string{"tarball"}, nil, `unknown command "tarball"`},
		{"bad epoch", []string{"zip", "-ext", filepath.Join(root, "extension.json")}, map[string]string{"SOURCE_DATE_EPOCH": "yesterday"}, "SOURCE_DATE_EPOCH"},
		{"missing extension.json", []string{"deb", "-ext", "nope.json"}, nil, "read extension identity"},
		{"bad identity", []string{"deb", "-ext", filepath.Join("testdata", "HandlerManifest.json")}, nil, "HandlerManifest.json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, &bytes.Buffer{}, func(k string) string { return tc.env[k] })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v; want it to mention %q", err, tc.want)
			}
		})
	}
}
