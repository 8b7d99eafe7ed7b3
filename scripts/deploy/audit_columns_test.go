package deploy

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mspguest/msp/agent/audit"
)

// column is one column of a DCR stream declaration or a Log Analytics table.
type column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// auditField is one leaf of audit.Entry as the Log Analytics table sees it.
type auditField struct {
	path     []string // JSON keys from the line's root: ["caller", "uid"]
	column   string   // table column name
	dcrType  string   // DCR stream type: string, long, boolean, datetime, dynamic
	topLevel bool
}

// tableName is the custom table the DCR writes to.
const tableName = "MspAudit_CL"

// renamed are table column names that cannot be the Go field name: `id` is
// reserved in Log Analytics, `time` becomes TimeGenerated.
var renamed = map[string]string{"ID": "RequestId", "Time": "TimeGenerated"}

// dcrType maps a Go type of audit.Entry to a DCR stream column type.
func dcrType(t reflect.Type) (string, error) {
	if t == reflect.TypeOf(time.Time{}) {
		return "datetime", nil
	}
	switch t.Kind() {
	case reflect.String:
		return "string", nil
	case reflect.Bool:
		return "boolean", nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32:
		return "long", nil
	case reflect.Float32, reflect.Float64:
		return "real", nil
	case reflect.Slice, reflect.Map, reflect.Struct:
		return "dynamic", nil
	}
	return "", fmt.Errorf("%v has no DCR column type; extend dcrType", t)
}

// jsonKey is the key encoding/json writes for a field, "" when it writes none.
func jsonKey(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag := strings.Split(f.Tag.Get("json"), ",")[0]
	if tag == "-" {
		return ""
	}
	if tag == "" {
		return f.Name
	}
	return tag
}

// auditFields walks audit.Entry by reflection: every top-level key, and the
// leaves of nested structs (the caller) as <Struct><Field> columns.
func auditFields(t *testing.T) []auditField {
	t.Helper()
	var out []auditField
	entry := reflect.TypeOf(audit.Entry{})
	for i := range entry.NumField() {
		f := entry.Field(i)
		key := jsonKey(f)
		if key == "" {
			continue
		}
		typ, err := dcrType(f.Type)
		if err != nil {
			t.Fatal(err)
		}
		if f.Type.Kind() == reflect.Struct && typ == "dynamic" {
			for j := range f.Type.NumField() {
				sub := f.Type.Field(j)
				subKey := jsonKey(sub)
				if subKey == "" {
					continue
				}
				subTyp, err := dcrType(sub.Type)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, auditField{path: []string{key, subKey}, column: f.Name + sub.Name, dcrType: subTyp})
			}
			out = append(out, auditField{path: []string{key}, dcrType: typ, topLevel: true})
			continue
		}
		name := f.Name
		if r, ok := renamed[name]; ok {
			name = r
		}
		out = append(out, auditField{path: []string{key}, column: name, dcrType: typ, topLevel: true})
	}
	return out
}

// expectedStream is the stream declaration: what AMA adds, then every
// top-level key of an audit line.
func expectedStream(fields []auditField) []column {
	cols := []column{{"TimeGenerated", "datetime"}, {"Computer", "string"}, {"FilePath", "string"}}
	for _, f := range fields {
		if f.topLevel {
			cols = append(cols, column{f.path[0], f.dcrType})
		}
	}
	return cols
}

// expectedTable is the Log Analytics table: typed, flat columns.
func expectedTable(fields []auditField) []column {
	cols := []column{{"TimeGenerated", "dateTime"}, {"Computer", "string"}}
	for _, f := range fields {
		if f.column == "" || f.column == "TimeGenerated" {
			continue
		}
		typ := f.dcrType
		if typ == "datetime" {
			typ = "dateTime" // the table API spells it so
		}
		cols = append(cols, column{f.column, typ})
	}
	return cols
}

// expectedTransform is the DCR's transformKql from stream to table.
func expectedTransform(fields []auditField) string {
	convert := map[string]string{"string": "tostring", "long": "tolong", "boolean": "tobool", "datetime": "todatetime", "real": "todouble"}
	parts := []string{"TimeGenerated = coalesce(['time'], TimeGenerated)", "Computer"}
	for _, f := range fields {
		if f.column == "" || f.column == "TimeGenerated" {
			continue
		}
		ref := "['" + strings.Join(f.path, "']['") + "']"
		if len(f.path) > 1 {
			if fn, ok := convert[f.dcrType]; ok {
				ref = fn + "(" + ref + ")"
			}
		}
		parts = append(parts, f.column+" = "+ref)
	}
	return "source | project " + strings.Join(parts, ", ")
}
