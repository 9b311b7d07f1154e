//go:build !ethkeygen_fuzzonly

package keygen_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ethkeygen/ethkeygen/custody/custodytest"

	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/enclave"
	"github.com/ethkeygen/ethkeygen/keygen"
)

// redactionMnemonic is public: it is the secret this test looks for.
const redactionMnemonic = "test test test test test test test test test test test waste"

// secretSample is one value of a secret type and the raw secrets it holds.
type secretSample struct {
	name    string
	value   any
	secrets [][]byte
	// jsonIsWire: json.Marshal is the type's wire form (it is sent, not
	// logged) and is not expected to redact.
	jsonIsWire bool
}

// forms lists the text forms a secret could take in output: itself, hex
// (both cases), base64 (standard and URL), and each run of three words for
// a phrase, and Go's []byte formatting of the first bytes.
func forms(secret []byte) []string {
	if len(secret) == 0 {
		return nil
	}
	out := []string{string(secret), hex.EncodeToString(secret), strings.ToUpper(hex.EncodeToString(secret)),
		base64.StdEncoding.EncodeToString(secret), base64.RawURLEncoding.EncodeToString(secret)}
	if words := strings.Fields(string(secret)); len(words) >= 3 {
		for i := 0; i+3 <= len(words); i++ {
			out = append(out, strings.Join(words[i:i+3], " "))
		}
	}
	if len(secret) >= 8 {
		out = append(out, strings.Trim(fmt.Sprint(secret[:8]), "[]"))
	}
	return out
}

// samples builds one value of every secret type with known content.
func samples(t *testing.T) []secretSample {
	t.Helper()
	m, err := keygen.ParseMnemonic(redactionMnemonic)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Destroy)
	seed := m.Seed("")
	sk, err := keygen.DeriveKey(seed, keygen.SigningPath(0))
	if err != nil {
		t.Fatal(err)
	}
	vk, err := keygen.DeriveValidator(seed, 1)
	if err != nil {
		t.Fatal(err)
	}
	password := []byte("redaction-password-0123")
	b := keygen.NewBytes(bytes.Clone(password))
	creds := enclave.Credentials{AccessKeyID: "AKIDREDACTIONTEST", SecretAccessKey: "redaction/secret+access+key", SessionToken: "redaction-session-token",
		Expires: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	credSecrets := [][]byte{[]byte(creds.SecretAccessKey), []byte(creds.SessionToken)}
	secret, secretRaw := openedSecret(t)
	out := []secretSample{
		{name: "keygen.Bytes", value: b, secrets: [][]byte{password}},
		{name: "keygen.Bytes (value)", value: *keygen.NewBytes(bytes.Clone(password)), secrets: [][]byte{password}},
		{name: "keygen.Mnemonic", value: m, secrets: [][]byte{[]byte(redactionMnemonic)}},
		{name: "keygen.Bytes (seed)", value: seed, secrets: [][]byte{bytes.Clone(seed.UnsafeBytes())}},
		{name: "keygen.SecretKey", value: sk, secrets: [][]byte{bytes.Clone(sk.UnsafeBytes())}},
		{name: "keygen.ValidatorKeys.Signing", value: vk.Signing, secrets: [][]byte{bytes.Clone(vk.Signing.UnsafeBytes())}},
		{name: "custody.Secret", value: secret, secrets: secretRaw},
		{name: "enclave.Credentials", value: creds, secrets: credSecrets, jsonIsWire: true},
		{name: "*enclave.Credentials", value: &creds, secrets: credSecrets, jsonIsWire: true},
	}
	return out
}

// openedSecret runs the pipeline once (raw format, embedded store, local
// age key) and opens the validator: a custody.Secret with a signing key and
// its mnemonic.
func openedSecret(t *testing.T) (*custody.Secret, [][]byte) {
	t.Helper()
	ctx := context.Background()
	e := custodytest.NewEmbedded(t)
	g := e.Generator
	res, err := g.Generate(ctx, custody.Request{ID: "redaction", Count: 1, Network: depositdata.Hoodi, Format: custody.FormatRaw}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := e.Opener.Open(ctx, res.Validators[0].Pubkey)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Destroy)
	raw := [][]byte{bytes.Clone(s.SigningKey().UnsafeBytes())}
	if mn := s.UnsafeMnemonic(); len(mn) != 0 {
		raw = append(raw, bytes.Clone(mn))
	} else {
		t.Fatal("the opened secret holds no mnemonic: the test would prove less")
	}
	return s, raw
}

func assertClean(t *testing.T, how, out string, secrets [][]byte) {
	t.Helper()
	for _, s := range secrets {
		for _, f := range forms(s) {
			if strings.Contains(out, f) {
				t.Errorf("%s leaks a secret (%q) in %q", how, f, out)
				return
			}
		}
	}
}

// TestRedaction: every secret type stays redacted under every fmt verb,
// inside structs, slices and maps, in errors that wrap it with %v, through
// json.Marshal, and through slog's text and JSON handlers (as a value, as a
// group member, and at debug level).
func TestRedaction(t *testing.T) {
	for _, s := range samples(t) {
		t.Run(s.name, func(t *testing.T) {
			for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v"} {
				assertClean(t, verb, fmt.Sprintf(verb, s.value), s.secrets)
				wrapped := struct {
					Name   string
					Secret any
					List   []any
					Map    map[string]any
				}{"w", s.value, []any{s.value}, map[string]any{"k": s.value}}
				assertClean(t, verb+" in a struct", fmt.Sprintf(verb, wrapped), s.secrets)
			}
			assertClean(t, "fmt.Sprint", fmt.Sprint(s.value), s.secrets)
			assertClean(t, "fmt.Sprintln", fmt.Sprintln("x", s.value), s.secrets)

			err := fmt.Errorf("opening 0xabc: %v", s.value)
			assertClean(t, "fmt.Errorf(%v)", err.Error(), s.secrets)
			err = fmt.Errorf("outer: %w", fmt.Errorf("inner %+v", s.value))
			assertClean(t, "wrapped error", err.Error(), s.secrets)
			if errors.Unwrap(err) == nil {
				t.Fatal("not wrapped")
			}

			if !s.jsonIsWire {
				b, err := json.Marshal(s.value)
				if err == nil {
					assertClean(t, "json.Marshal", string(b), s.secrets)
				}
				b, err = json.Marshal(map[string]any{"secret": s.value, "list": []any{s.value}})
				if err == nil {
					assertClean(t, "json.Marshal nested", string(b), s.secrets)
				}
			}

			for _, h := range []struct {
				name string
				mk   func(*bytes.Buffer) slog.Handler
			}{
				{"text", func(b *bytes.Buffer) slog.Handler {
					return slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug, AddSource: true})
				}},
				{"json", func(b *bytes.Buffer) slog.Handler {
					return slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug, AddSource: true})
				}},
			} {
				var buf bytes.Buffer
				log := slog.New(h.mk(&buf)).With("bound", s.value)
				log.Debug("secret", "value", s.value, slog.Any("any", s.value), slog.Group("g", "inner", s.value))
				log.Info("error", "err", fmt.Errorf("failed: %v", s.value))
				log.LogAttrs(context.Background(), slog.LevelWarn, "attrs", slog.Any("v", s.value))
				log.WithGroup("grp").Error("in group", "v", s.value)
				if buf.Len() == 0 {
					t.Fatal("nothing logged")
				}
				assertClean(t, "slog "+h.name, buf.String(), s.secrets)
			}
		})
	}
}

// TestRedactionSurvivesDestroy: formatting a destroyed secret neither
// panics nor reveals anything, and Destroy clears the bytes.
func TestRedactionSurvivesDestroy(t *testing.T) {
	raw := []byte("destroy-me-secret")
	b := keygen.NewBytes(raw)
	b.Destroy()
	b.Destroy()
	if !bytes.Equal(raw, make([]byte, len(raw))) {
		t.Fatal("Destroy left secret bytes in place")
	}
	if got := fmt.Sprintf("%v %x", b, b); strings.Contains(got, "destroy") {
		t.Fatal(got)
	}
	var nilBytes *keygen.Bytes
	_ = fmt.Sprintf("%v %+v %#v", nilBytes, (*keygen.Mnemonic)(nil), (*keygen.SecretKey)(nil))
}

// TestLoadRequestRedaction: the enclave's load request carries the parent
// role's credentials; it is logged (slog) and formatted (%v, %+v) without
// them, also where a value (not a pointer) or a Message wraps it.
func TestLoadRequestRedaction(t *testing.T) {
	creds := enclave.Credentials{AccessKeyID: "AKIDREDACTIONTEST", SecretAccessKey: "redaction/secret+access+key", SessionToken: "redaction-session-token"}
	secrets := [][]byte{[]byte(creds.SecretAccessKey), []byte(creds.SessionToken)}
	lr := &enclave.LoadRequest{Version: 1, Region: "eu-west-1", Credentials: creds}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x"} {
		assertClean(t, verb, fmt.Sprintf(verb, lr), secrets)
		assertClean(t, verb+" (value)", fmt.Sprintf(verb, *lr), secrets)
	}
	for _, mk := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler {
			return slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})
		},
		func(b *bytes.Buffer) slog.Handler {
			return slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})
		},
	} {
		var buf bytes.Buffer
		slog.New(mk(&buf)).Debug("load request", "request", lr, slog.Any("r", lr))
		assertClean(t, "slog", buf.String(), secrets)
	}
	wrapped := map[string]func() string{
		"%s of a *LoadRequest inside a struct": func() string { return fmt.Sprintf("%s", struct{ R any }{lr}) },
		"slog JSON of a LoadRequest value": func() string {
			var buf bytes.Buffer
			slog.New(slog.NewJSONHandler(&buf, nil)).Info("r", "r", *lr)
			return buf.String()
		},
		"slog JSON of a Message": func() string {
			var buf bytes.Buffer
			slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "m", enclave.Message{Type: enclave.TypeLoad, Load: lr})
			return buf.String()
		},
	}
	for name, f := range wrapped {
		t.Run(name, func(t *testing.T) {
			out := f()
			for _, s := range secrets {
				if strings.Contains(out, string(s)) {
					t.Fatalf("credentials leak: %s", out)
				}
			}
		})
	}
}
