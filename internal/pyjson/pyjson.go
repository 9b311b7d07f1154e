// Package pyjson writes JSON the way Python's json.dumps does by default:
// one line, ", " between items and ": " between keys and values. The staking
// deposit CLIs write deposit_data and keystore files that way, and matching
// them byte for byte lets users diff our files against theirs.
package pyjson

import (
	"bytes"
	"encoding/json"
)

// Marshal encodes v with encoding/json (struct field order kept, HTML
// escaping off) and then spaces the separators like json.dumps.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	compact := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	out := make([]byte, 0, len(compact)+len(compact)/8)
	inString, escaped := false, false
	for _, c := range compact {
		out = append(out, c)
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case !inString && (c == ',' || c == ':'):
			out = append(out, ' ')
		}
	}
	return out, nil
}
