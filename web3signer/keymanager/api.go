package keymanager

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// ImportStatus is the server's answer for one imported keystore.
type ImportStatus string

// Import statuses of the Keymanager API.
const (
	Imported  ImportStatus = "imported"  // the key is now active on the server
	Duplicate ImportStatus = "duplicate" // the server already held the key: nothing changed
	Failed    ImportStatus = "error"     // the server refused or failed this key
)

// DeleteStatus is the server's answer for one deleted key.
type DeleteStatus string

// Delete statuses of the Keymanager API.
const (
	Deleted      DeleteStatus = "deleted"    // removed; its history is in the interchange
	NotActive    DeleteStatus = "not_active" // not held, but the server has history for it (in the interchange)
	NotFound     DeleteStatus = "not_found"  // neither held nor any history
	DeleteFailed DeleteStatus = "error"
)

// ImportResult is the answer for one keystore of an import.
type ImportResult struct {
	Status  ImportStatus
	Message string // the server's explanation (one line), if any
}

// DeleteResult is the answer for one pubkey of a delete.
type DeleteResult struct {
	Status  DeleteStatus
	Message string
}

// Key is a key the server holds.
type Key struct {
	Pubkey         string // 96 lowercase hex characters, no 0x
	DerivationPath string
	Readonly       bool
}

// Keystore is one keystore to import: its EIP-2335 JSON and its password.
// Import neither retains nor clears them.
type Keystore struct {
	JSON     []byte
	Password []byte
}

// EncodeImportRequest is the body of POST /eth/v1/keystores: keystores
// and passwords as JSON strings, in order, and the EIP-3076 interchange
// as a JSON string. The result holds the passwords: clear it when done.
func EncodeImportRequest(keystores []Keystore, slashingProtection []byte) ([]byte, error) {
	if len(keystores) == 0 {
		return nil, fmt.Errorf("%w: no keystores", ErrRequest)
	}
	if len(slashingProtection) == 0 {
		return nil, fmt.Errorf("%w: no slashing-protection interchange (give an empty one for keys that never signed)", ErrRequest)
	}
	if !json.Valid(slashingProtection) {
		return nil, fmt.Errorf("%w: the slashing-protection interchange is not JSON", ErrRequest)
	}
	size := 64 + jsonStringLen(slashingProtection)
	for i, k := range keystores {
		if !json.Valid(k.JSON) {
			return nil, fmt.Errorf("%w: keystore %d is not JSON", ErrRequest, i)
		}
		if len(k.Password) == 0 || !utf8.Valid(k.Password) {
			return nil, fmt.Errorf("%w: the password of keystore %d is empty or not UTF-8", ErrRequest, i)
		}
		size += jsonStringLen(k.JSON) + jsonStringLen(k.Password) + 2
	}
	b := make([]byte, 0, size) // one buffer: no copy of a password is left behind by growing it
	b = append(b, `{"keystores":[`...)
	for i, k := range keystores {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k.JSON)
	}
	b = append(b, `],"passwords":[`...)
	for i, k := range keystores {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k.Password)
	}
	b = append(b, `],"slashing_protection":`...)
	b = appendJSONString(b, slashingProtection)
	b = append(b, '}')
	return b, nil
}

// jsonStringLen is the length of s encoded by appendJSONString.
func jsonStringLen(s []byte) int {
	n := 2
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			n += 2
		case c < 0x20:
			n += 6
		default:
			n++
		}
	}
	return n
}

// appendJSONString appends s (valid UTF-8) as a JSON string, escaping
// what JSON requires and nothing else, without intermediate copies.
func appendJSONString(b, s []byte) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// Import sends keystores with their passwords and the slashing-protection
// interchange (EIP-3076 JSON; required) and returns the server's answer
// for each keystore, in order. An error means the server gave no per-key
// answer (or one that does not match the request).
func (c *Client) Import(ctx context.Context, keystores []Keystore, slashingProtection []byte) ([]ImportResult, error) {
	body, err := EncodeImportRequest(keystores, slashingProtection)
	if err != nil {
		return nil, err
	}
	defer clear(body)
	resp, err := c.do(ctx, http.MethodPost, body)
	if err != nil {
		return nil, err
	}
	return ParseImportResponse(resp, len(keystores))
}

// Delete asks the server to remove the keys of pubkeys (hex, "0x"
// optional) and returns its answer for each, in order, with the
// slashing-protection interchange it returned (EIP-3076 JSON: the history
// of every key it knew, to hand to the next signer).
func (c *Client) Delete(ctx context.Context, pubkeys []string) ([]DeleteResult, []byte, error) {
	if len(pubkeys) == 0 {
		return nil, nil, fmt.Errorf("%w: no pubkeys", ErrRequest)
	}
	req := struct {
		Pubkeys []string `json:"pubkeys"`
	}{make([]string, len(pubkeys))}
	for i, p := range pubkeys {
		pk, err := normalizePubkey(p)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrRequest, err)
		}
		req.Pubkeys[i] = "0x" + pk
	}
	body, _ := json.Marshal(req) // strings always marshal
	resp, err := c.do(ctx, http.MethodDelete, body)
	if err != nil {
		return nil, nil, err
	}
	return ParseDeleteResponse(resp, len(pubkeys))
}

// List returns the keys the server holds.
func (c *Client) List(ctx context.Context) ([]Key, error) {
	resp, err := c.do(ctx, http.MethodGet, nil)
	if err != nil {
		return nil, err
	}
	return ParseListResponse(resp)
}

func normalizePubkey(p string) (string, error) {
	s := p
	if len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		s = s[2:]
	}
	s = strings.ToLower(s)
	if b, err := hex.DecodeString(s); err != nil || len(b) != 48 {
		return "", fmt.Errorf("pubkey %q is not 48 bytes of hex", oneLine(p, 100))
	}
	return s, nil
}

// unmarshal decodes one JSON value and nothing after it.
func unmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("data after the JSON value")
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); err == nil {
		return fmt.Errorf("data after the JSON value")
	}
	return nil
}

type statusMessage struct {
	Status  *string `json:"status"`
	Message string  `json:"message"`
}

func parseStatuses(op string, b []byte, n int, extra *json.RawMessage) ([]statusMessage, error) {
	var doc struct {
		Data               *[]statusMessage `json:"data"`
		SlashingProtection *json.RawMessage `json:"slashing_protection"`
	}
	if err := unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%w: %s: the answer is not the API's JSON", ErrMalformed, op)
	}
	if doc.Data == nil {
		return nil, fmt.Errorf("%w: %s: the answer has no data", ErrMalformed, op)
	}
	if len(*doc.Data) != n {
		return nil, fmt.Errorf("%w: %s: %d answers for %d keys", ErrMalformed, op, len(*doc.Data), n)
	}
	for i, s := range *doc.Data {
		if s.Status == nil {
			return nil, fmt.Errorf("%w: %s: answer %d has no status", ErrMalformed, op, i)
		}
	}
	if extra != nil && doc.SlashingProtection != nil {
		*extra = *doc.SlashingProtection
	}
	return *doc.Data, nil
}

// ParseImportResponse parses the answer to an import of n keystores.
func ParseImportResponse(b []byte, n int) ([]ImportResult, error) {
	const op = "POST " + KeystoresPath
	st, err := parseStatuses(op, b, n, nil)
	if err != nil {
		return nil, err
	}
	out := make([]ImportResult, n)
	for i, s := range st {
		switch ImportStatus(*s.Status) {
		case Imported, Duplicate, Failed:
		default:
			return nil, fmt.Errorf("%w: %s: answer %d has status %q", ErrMalformed, op, i, oneLine(*s.Status, 40))
		}
		out[i] = ImportResult{Status: ImportStatus(*s.Status), Message: oneLine(s.Message, 300)}
	}
	return out, nil
}

// ParseDeleteResponse parses the answer to a delete of n pubkeys: the
// per-key results and the slashing-protection interchange (JSON).
func ParseDeleteResponse(b []byte, n int) ([]DeleteResult, []byte, error) {
	const op = "DELETE " + KeystoresPath
	var raw json.RawMessage
	st, err := parseStatuses(op, b, n, &raw)
	if err != nil {
		return nil, nil, err
	}
	out := make([]DeleteResult, n)
	for i, s := range st {
		switch DeleteStatus(*s.Status) {
		case Deleted, NotActive, NotFound, DeleteFailed:
		default:
			return nil, nil, fmt.Errorf("%w: %s: answer %d has status %q", ErrMalformed, op, i, oneLine(*s.Status, 40))
		}
		out[i] = DeleteResult{Status: DeleteStatus(*s.Status), Message: oneLine(s.Message, 300)}
	}
	// The interchange travels as a JSON string holding JSON.
	var ic string
	if len(raw) == 0 || json.Unmarshal(raw, &ic) != nil || !json.Valid([]byte(ic)) {
		return nil, nil, fmt.Errorf("%w: %s: no slashing-protection interchange in the answer", ErrMalformed, op)
	}
	return out, []byte(ic), nil
}

// ParseListResponse parses the answer to a list.
func ParseListResponse(b []byte) ([]Key, error) {
	const op = "GET " + KeystoresPath
	var doc struct {
		Data *[]struct {
			ValidatingPubkey *string `json:"validating_pubkey"`
			DerivationPath   string  `json:"derivation_path"`
			Readonly         bool    `json:"readonly"`
		} `json:"data"`
	}
	if err := unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%w: %s: the answer is not the API's JSON", ErrMalformed, op)
	}
	if doc.Data == nil {
		return nil, fmt.Errorf("%w: %s: the answer has no data", ErrMalformed, op)
	}
	out := make([]Key, 0, len(*doc.Data))
	for i, k := range *doc.Data {
		if k.ValidatingPubkey == nil {
			return nil, fmt.Errorf("%w: %s: key %d has no validating_pubkey", ErrMalformed, op, i)
		}
		pk, err := normalizePubkey(*k.ValidatingPubkey)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: key %d: %v", ErrMalformed, op, i, err)
		}
		out = append(out, Key{Pubkey: pk, DerivationPath: oneLine(k.DerivationPath, 100), Readonly: k.Readonly})
	}
	return out, nil
}
