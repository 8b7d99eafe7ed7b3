package rulefile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// jvalue is a JSON value with object members kept in order, so that
// duplicate keys can be detected and problems can name their JSON path.
type jvalue struct {
	kind    jkind
	str     string // string, or number text
	boolean bool
	members []jmember
	elems   []jvalue
}

type jmember struct {
	key string
	val jvalue
}

type jkind uint8

const (
	jNull jkind = iota
	jBool
	jNumber
	jString
	jObject
	jArray
)

func (k jkind) String() string {
	return [...]string{"null", "boolean", "number", "string", "object", "array"}[k]
}

// maxDepth bounds nesting; a rule file needs 5 levels.
const maxDepth = 32

// parseTree decodes exactly one JSON value. A duplicate object key at any
// depth, trailing data and nesting deeper than maxDepth are errors
// (I-16): encoding/json alone keeps the last duplicate silently.
func parseTree(data []byte) (jvalue, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := readValue(dec, "", 0)
	if err != nil {
		return jvalue{}, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return jvalue{}, &Problem{Path: "$", Message: fmt.Sprintf("trailing data after the JSON value at offset %d: a file holds exactly one object", dec.InputOffset())}
	}
	return v, nil
}

func readValue(dec *json.Decoder, path string, depth int) (jvalue, error) {
	tok, err := dec.Token()
	if err != nil {
		return jvalue{}, syntaxProblem(path, err)
	}
	switch t := tok.(type) {
	case nil:
		return jvalue{kind: jNull}, nil
	case bool:
		return jvalue{kind: jBool, boolean: t}, nil
	case json.Number:
		return jvalue{kind: jNumber, str: t.String()}, nil
	case string:
		return jvalue{kind: jString, str: t}, nil
	case json.Delim:
		if depth >= maxDepth {
			return jvalue{}, &Problem{Path: rootPath(path), Message: fmt.Sprintf("nested deeper than %d levels", maxDepth)}
		}
		switch t {
		case '{':
			v := jvalue{kind: jObject}
			seen := map[string]bool{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return jvalue{}, syntaxProblem(path, err)
				}
				key, _ := kt.(string)
				kp := joinKey(path, key)
				if seen[key] {
					return jvalue{}, &Problem{Path: kp, Message: "duplicate key: each key may appear once per object"}
				}
				seen[key] = true
				mv, err := readValue(dec, kp, depth+1)
				if err != nil {
					return jvalue{}, err
				}
				v.members = append(v.members, jmember{key, mv})
			}
			if _, err := dec.Token(); err != nil {
				return jvalue{}, syntaxProblem(path, err)
			}
			return v, nil
		case '[':
			v := jvalue{kind: jArray, elems: []jvalue{}}
			for i := 0; dec.More(); i++ {
				ev, err := readValue(dec, path+"["+strconv.Itoa(i)+"]", depth+1)
				if err != nil {
					return jvalue{}, err
				}
				v.elems = append(v.elems, ev)
			}
			if _, err := dec.Token(); err != nil {
				return jvalue{}, syntaxProblem(path, err)
			}
			return v, nil
		}
	}
	return jvalue{}, &Problem{Path: rootPath(path), Message: fmt.Sprintf("invalid JSON: unexpected %v", tok)}
}

// syntaxProblem reports a tokenizer error at path.
func syntaxProblem(path string, err error) *Problem {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &Problem{Path: rootPath(path), Message: "unexpected end of JSON input: the document is truncated"}
	}
	return &Problem{Path: rootPath(path), Message: "invalid JSON: " + err.Error()}
}

// joinKey appends an object key to a JSON path in the dotted form used in
// messages ("rules.privileges[2].path").
func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// rootPath names the document itself "$".
func rootPath(p string) string {
	if p == "" {
		return "$"
	}
	return p
}
