package settings

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/mspguest/msp/agent/authz/rulefile"
)

// SchemaFile is the name of the public settings schema in Schemas().
const SchemaFile = "public-settings.schema.json"

const (
	schemaID     = "https://github.com/mspguest/msp/handler/settings/schema/" + SchemaFile
	itemSchemaID = "https://github.com/mspguest/msp/agent/authz/schema/" + rulefile.ItemSchemaFile
)

//go:embed schema/*.json
var schemaFiles embed.FS

// Schemas returns the shipped schema files (SchemaFile).
func Schemas() fs.FS {
	sub, err := fs.Sub(schemaFiles, "schema")
	if err != nil {
		panic(err) // embedded above
	}
	return sub
}

// Public is the validated public settings document. The items are kept as
// the administrator's bytes so the agent reads them with its own loader
// (a missing mode keeps meaning "follow the host" there).
type Public struct {
	IMDS        json.RawMessage `json:"imds,omitempty"`
	WireServer  json.RawMessage `json:"wireServer,omitempty"`
	LogLevel    string          `json:"logLevel,omitempty"`
	NetnsPolicy string          `json:"netnsPolicy,omitempty"`
}

// Settings is one <seq>.settings file.
type Settings struct {
	Public Public
	// HasProtected reports that protected settings were present and
	// decrypted to a JSON object. Their content is not kept: nothing uses
	// it today, and what is not kept cannot leak.
	HasProtected bool
	// Hash identifies the file's content (public settings and the
	// encrypted protected settings), for the one-shot work gate.
	Hash string
}

// Problem is one defect, named by its JSON path in the public settings.
type Problem struct {
	Path    string
	Message string
}

// InvalidError lists every problem of the settings.
type InvalidError struct {
	Problems []Problem
}

func (e *InvalidError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Path + ": " + p.Message
	}
	return "invalid settings: " + strings.Join(parts, "; ")
}

func invalid(path, format string, args ...any) *InvalidError {
	return &InvalidError{Problems: []Problem{{Path: path, Message: fmt.Sprintf(format, args...)}}}
}

var compiled = sync.OnceValues(compileSchema)

func compileSchema() (*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	add := func(fsys fs.FS, name, id string) error {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return c.AddResource(id, doc)
	}
	if err := add(rulefile.Schemas(), rulefile.ItemSchemaFile, itemSchemaID); err != nil {
		return nil, err
	}
	if err := add(Schemas(), SchemaFile, schemaID); err != nil {
		return nil, err
	}
	return c.Compile(schemaID)
}

// ParsePublic validates the public settings: the schema first, then each
// item with the strict loader. An empty document or JSON null means no
// settings.
func ParsePublic(data []byte) (Public, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		return Public{}, nil
	}
	schema, err := compiled()
	if err != nil {
		return Public{}, fmt.Errorf("settings schema: %w", err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(trimmed))
	if err != nil {
		return Public{}, invalid("$", "not valid JSON: %v", err)
	}
	if err := schema.Validate(inst); err != nil {
		var ve *jsonschema.ValidationError
		if !errors.As(err, &ve) {
			return Public{}, fmt.Errorf("validate settings: %w", err)
		}
		return Public{}, &InvalidError{Problems: schemaProblems(ve)}
	}
	var p Public
	if err := json.Unmarshal(trimmed, &p); err != nil {
		return Public{}, invalid("$", "%v", err)
	}
	var problems []Problem
	for _, item := range []struct {
		name string
		raw  json.RawMessage
	}{{"imds", p.IMDS}, {"wireServer", p.WireServer}} {
		if item.raw == nil {
			continue
		}
		if _, err := rulefile.ParseItem(item.raw); err != nil {
			var ve *rulefile.ValidationError
			if !errors.As(err, &ve) {
				problems = append(problems, Problem{Path: item.name, Message: err.Error()})
				continue
			}
			for _, q := range ve.Problems {
				problems = append(problems, Problem{Path: joinPath(item.name, q.Path), Message: q.Message})
			}
		}
	}
	if problems != nil {
		return Public{}, &InvalidError{Problems: problems}
	}
	return p, nil
}

// joinPath prefixes a rulefile path ("$", "rules.roles[1]") with the item.
func joinPath(item, p string) string {
	switch {
	case p == "$" || p == "":
		return item
	case strings.HasPrefix(p, "$."):
		return item + "." + p[2:]
	case strings.HasPrefix(p, "$["), strings.HasPrefix(p, "["):
		return item + strings.TrimPrefix(p, "$")
	}
	return item + "." + p
}

// schemaProblems flattens the validator's tree into its leaves, each named
// by the instance path in the loader's notation ("imds.rules.roles[0]").
func schemaProblems(ve *jsonschema.ValidationError) []Problem {
	var out []Problem
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			out = append(out, Problem{Path: instancePath(e.InstanceLocation), Message: leafMessage(e, e.InstanceLocation)})
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	return out
}

// patternHints replace the schema's regular expressions in messages.
var patternHints = map[string]string{
	"mode":          "must be disabled, audit or enforce (any case)",
	"defaultAccess": "must be allow or deny (any case)",
}

func leafMessage(e *jsonschema.ValidationError, loc []string) string {
	msg := e.Error()
	// Error() reads "jsonschema validation failed with '<url>#<ptr>'\n- at '<loc>': <message>".
	if i := strings.LastIndex(msg, "': "); i >= 0 {
		msg = msg[i+3:]
	}
	if i := strings.Index(msg, " does not match pattern"); i >= 0 && len(loc) > 0 {
		if hint, ok := patternHints[loc[len(loc)-1]]; ok {
			msg = msg[:i] + " " + hint
		}
	}
	return msg
}

func instancePath(loc []string) string {
	if len(loc) == 0 {
		return "$"
	}
	var b strings.Builder
	for _, tok := range loc {
		if _, err := strconv.Atoi(tok); err == nil && b.Len() > 0 {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	return b.String()
}

// Decrypter turns the DER bytes of protected settings into plaintext with
// the certificate named by its thumbprint.
type Decrypter interface {
	Decrypt(thumbprint string, der []byte) ([]byte, error)
}

type settingsFile struct {
	RuntimeSettings []struct {
		HandlerSettings struct {
			PublicSettings                  json.RawMessage `json:"publicSettings"`
			ProtectedSettings               *string         `json:"protectedSettings"`
			ProtectedSettingsCertThumbprint *string         `json:"protectedSettingsCertThumbprint"`
		} `json:"handlerSettings"`
	} `json:"runtimeSettings"`
}

// FileName is the settings file of sequence number seq.
func FileName(configFolder string, seq int) string {
	return filepath.Join(configFolder, strconv.Itoa(seq)+".settings")
}

// Read reads and validates <configFolder>/<seq>.settings. An empty file
// (a handler without settings) is valid and means defaults. The error is an
// *InvalidError for bad content, including protected settings that cannot
// be decrypted or are not a JSON object; any other error is the file's.
func Read(configFolder string, seq int, dec Decrypter) (Settings, error) {
	data, err := os.ReadFile(FileName(configFolder, seq))
	if err != nil {
		return Settings{}, fmt.Errorf("read settings: %w", err)
	}
	return Parse(data, dec)
}

// Parse is Read on the file's content.
func Parse(data []byte, dec Decrypter) (Settings, error) {
	sum := sha256.Sum256(data)
	s := Settings{Hash: hex.EncodeToString(sum[:])}
	if len(bytes.TrimSpace(data)) == 0 {
		return s, nil
	}
	var f settingsFile
	if err := json.Unmarshal(data, &f); err != nil {
		return Settings{}, invalid("runtimeSettings", "the settings file is not valid JSON: %v", err)
	}
	if len(f.RuntimeSettings) != 1 {
		return Settings{}, invalid("runtimeSettings", "want exactly one element, got %d", len(f.RuntimeSettings))
	}
	hs := f.RuntimeSettings[0].HandlerSettings
	var err error
	if s.Public, err = ParsePublic(hs.PublicSettings); err != nil {
		return Settings{}, err
	}
	if hs.ProtectedSettings == nil || *hs.ProtectedSettings == "" {
		return s, nil
	}
	thumb := ""
	if hs.ProtectedSettingsCertThumbprint != nil {
		thumb = *hs.ProtectedSettingsCertThumbprint
	}
	if err := checkProtected(*hs.ProtectedSettings, thumb, dec); err != nil {
		return Settings{}, err
	}
	s.HasProtected = true
	return s, nil
}

func checkProtected(b64, thumb string, dec Decrypter) error {
	const path = "protectedSettings"
	if thumb == "" {
		return invalid(path, "present but protectedSettingsCertThumbprint is empty")
	}
	if !validThumbprint(thumb) {
		return invalid("protectedSettingsCertThumbprint", "%q is not a SHA-1 thumbprint (40 hex digits)", thumb)
	}
	der, err := base64Decode(b64)
	if err != nil {
		return invalid(path, "not valid base64: %v", err)
	}
	plain, err := dec.Decrypt(thumb, der)
	if err != nil {
		return invalid(path, "cannot decrypt with certificate %s: %v", thumb, err)
	}
	defer clear(plain)
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(plain, &obj); err != nil || obj == nil {
		// The error text could quote the plaintext: never pass it on.
		return invalid(path, "decrypted protected settings are not a JSON object")
	}
	return nil
}

func validThumbprint(s string) bool {
	if len(s) != 40 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}
