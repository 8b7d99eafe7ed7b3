package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mspguest/msp/agent/audit"
)

const queriesDir = "../../queries"

var (
	kqlComment   = regexp.MustCompile(`//[^\n]*`)
	kqlString    = regexp.MustCompile(`'[^']*'|"[^"]*"`)
	kqlUpperName = regexp.MustCompile(`\b[A-Z]\w*\b`)
	kqlAlias     = regexp.MustCompile(`\b([A-Za-z]\w*)\s*=[^=~]`)
	kqlLet       = regexp.MustCompile(`\blet\s+(\w+)`)
	decisionList = regexp.MustCompile(`Decision\s+(?:in\s*\(([^)]*)\)|==\s*('[^']*'))`)
)

// otherTables are tables besides the audit table a query may read.
var otherTables = map[string]bool{"Heartbeat": true}

// Every query reads the audit table, every capitalised name in it is a
// column of that table or a name the query defines (KQL's own functions and
// operators are lower case), and every decision it filters on is one the
// agent writes.
func TestQueriesUseTheAuditTable(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(queriesDir, "*.kql"))
	if err != nil || len(files) < 5 {
		t.Fatalf("queries: %v, %d files; want the five fleet queries", err, len(files))
	}
	columns := map[string]bool{tableName: true}
	for _, c := range readDCR(t).table {
		columns[c.Name] = true
	}
	decisions := map[string]bool{}
	for _, d := range []string{audit.DecisionAllow, audit.DecisionDeny, audit.DecisionAuditDeny, audit.DecisionExempt, audit.DecisionRejected} {
		decisions["'"+d+"'"] = true
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			text := kqlComment.ReplaceAllString(string(data), "")
			if !strings.Contains(string(data), "\n// ") && !strings.HasPrefix(string(data), "// ") {
				t.Error("no comment saying what the query answers")
			}
			if !strings.Contains(text, tableName) {
				t.Errorf("does not read %s", tableName)
			}
			for _, m := range decisionList.FindAllStringSubmatch(text, -1) {
				for _, lit := range strings.Split(m[1]+m[2], ",") {
					if lit = strings.TrimSpace(lit); !decisions[lit] {
						t.Errorf("filters on decision %s; the agent writes %v", lit, keys(decisions))
					}
				}
			}
			code := kqlString.ReplaceAllString(text, "''")
			defined := map[string]bool{}
			for _, m := range kqlAlias.FindAllStringSubmatch(code, -1) {
				defined[m[1]] = true
			}
			for _, m := range kqlLet.FindAllStringSubmatch(code, -1) {
				defined[m[1]] = true
			}
			for _, name := range kqlUpperName.FindAllString(code, -1) {
				if !columns[name] && !defined[name] && !otherTables[name] {
					t.Errorf("%s is neither a column of %s nor defined in the query", name, tableName)
				}
			}
		})
	}
}
