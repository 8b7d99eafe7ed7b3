package deploy

import (
	"encoding/json"
	"reflect"
	"sort"
	"testing"

	"github.com/mspguest/msp/agent/audit"
)

const dcrTemplate = "monitor/audit-dcr.json"

// dcrParts are the pieces of the DCR template that must follow audit.Entry.
type dcrParts struct {
	table     []column
	stream    []column
	streams   []string // stream names the data source, the flow and the declaration use
	transform string
	output    string
	filePath  string
}

func readDCR(t *testing.T) dcrParts {
	t.Helper()
	tmpl := readTemplate(t, dcrTemplate)
	var p dcrParts
	for _, r := range tmpl.Resources {
		switch r.Type {
		case "Microsoft.OperationalInsights/workspaces/tables":
			var props struct {
				Schema struct {
					Name    string   `json:"name"`
					Columns []column `json:"columns"`
				} `json:"schema"`
			}
			mustUnmarshal(t, r.Properties, &props)
			p.table = props.Schema.Columns
		case "Microsoft.Insights/dataCollectionRules":
			var props struct {
				StreamDeclarations map[string]struct {
					Columns []column `json:"columns"`
				} `json:"streamDeclarations"`
				DataSources struct {
					LogFiles []struct {
						Streams      []string `json:"streams"`
						FilePatterns []string `json:"filePatterns"`
						Format       string   `json:"format"`
					} `json:"logFiles"`
				} `json:"dataSources"`
				DataFlows []struct {
					Streams      []string `json:"streams"`
					TransformKql string   `json:"transformKql"`
					OutputStream string   `json:"outputStream"`
				} `json:"dataFlows"`
			}
			mustUnmarshal(t, r.Properties, &props)
			if len(props.StreamDeclarations) != 1 || len(props.DataSources.LogFiles) != 1 || len(props.DataFlows) != 1 {
				t.Fatalf("%s: want one stream declaration, one logFiles source and one data flow", dcrTemplate)
			}
			for name, decl := range props.StreamDeclarations {
				p.streams = append(p.streams, name)
				p.stream = decl.Columns
			}
			src := props.DataSources.LogFiles[0]
			if src.Format != "json" || len(src.FilePatterns) != 1 {
				t.Errorf("logFiles source: format %q, patterns %q; want json and one pattern", src.Format, src.FilePatterns)
			} else {
				p.filePath = src.FilePatterns[0]
			}
			p.streams = append(p.streams, src.Streams...)
			p.streams = append(p.streams, props.DataFlows[0].Streams...)
			p.transform = props.DataFlows[0].TransformKql
			p.output = props.DataFlows[0].OutputStream
		}
	}
	return p
}

func mustUnmarshal(t *testing.T, data json.RawMessage, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", dcrTemplate, err)
	}
}

// The DCR's stream, table and transform are generated here from audit.Entry
// by reflection and compared with the template, so the two cannot drift.
func TestDCRColumnsFollowAuditEntry(t *testing.T) {
	fields := auditFields(t)
	p := readDCR(t)
	show := func(v any) string { b, _ := json.MarshalIndent(v, "", "  "); return string(b) }
	if want := expectedStream(fields); !reflect.DeepEqual(p.stream, want) {
		t.Errorf("%s stream declaration columns\n got %s\nwant %s", dcrTemplate, show(p.stream), show(want))
	}
	if want := expectedTable(fields); !reflect.DeepEqual(p.table, want) {
		t.Errorf("%s table columns\n got %s\nwant %s", dcrTemplate, show(p.table), show(want))
	}
	if want := expectedTransform(fields); p.transform != want {
		t.Errorf("%s transformKql\n got %q\nwant %q", dcrTemplate, p.transform, want)
	}
	for _, s := range p.streams {
		if s != p.streams[0] {
			t.Errorf("%s: streams %q; want the same stream name in declaration, source and flow", dcrTemplate, p.streams)
			break
		}
	}
	if p.output != "[format('Custom-{0}', parameters('tableName'))]" {
		t.Errorf("outputStream %q; want the table parameter's Custom- stream", p.output)
	}
	if p.filePath != "[parameters('auditLogPath')]" {
		t.Errorf("file pattern %q; want the auditLogPath parameter", p.filePath)
	}
	tmpl := readTemplate(t, dcrTemplate)
	if got := tmpl.Parameters["auditLogPath"].DefaultValue; string(got) != `"/var/log/msp-agent/audit.jsonl"` {
		t.Errorf("auditLogPath default %s; want the agent's audit log", got)
	}
	if got := tmpl.Parameters["tableName"].DefaultValue; string(got) != `"`+tableName+`"` {
		t.Errorf("tableName default %s; want %q (the queries/ use it)", got, tableName)
	}
}

// The keys encoding/json writes for an audit line are exactly the stream's
// JSON columns, and the caller's keys exactly those the transform reads.
func TestDCRStreamMatchesEncodedAuditLine(t *testing.T) {
	line, err := json.Marshal(audit.Entry{Caller: audit.Caller{Groups: []string{"g"}}})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatal(err)
	}
	var caller map[string]json.RawMessage
	if err := json.Unmarshal(m["caller"], &caller); err != nil {
		t.Fatal(err)
	}
	var streamKeys, callerKeys []string
	for _, c := range readDCR(t).stream[3:] { // after TimeGenerated, Computer, FilePath
		streamKeys = append(streamKeys, c.Name)
	}
	for _, f := range auditFields(t) {
		if len(f.path) == 2 && f.path[0] == "caller" {
			callerKeys = append(callerKeys, f.path[1])
		}
	}
	if got, want := sortedKeys(m), sorted(streamKeys); !reflect.DeepEqual(got, want) {
		t.Errorf("audit line keys %q; stream declares %q", got, want)
	}
	if got, want := sortedKeys(caller), sorted(callerKeys); !reflect.DeepEqual(got, want) {
		t.Errorf("caller keys %q; transform reads %q", got, want)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	return sorted(keys)
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}
