package rulefile

import (
	"embed"
	"io/fs"
)

// The JSON Schemas (draft 2020-12) shipped with the package. They describe
// what ParseItem and ParseLocal accept, except what JSON Schema cannot
// express: duplicate keys, unique names and references between arrays.
const (
	ItemSchemaFile      = "authorization-item.schema.json"
	LocalFileSchemaFile = "local-rules.schema.json"
)

//go:embed schema/*.json
var schemaFiles embed.FS

// Schemas returns the schema files, named ItemSchemaFile and
// LocalFileSchemaFile.
func Schemas() fs.FS {
	sub, err := fs.Sub(schemaFiles, "schema")
	if err != nil {
		panic(err) // the directory is embedded above
	}
	return sub
}
