package main

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// rawInvoke posts an event and returns the HTTP status and body, whatever
// they are.
func (f *function) rawInvoke(t *testing.T, event string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.url, strings.NewReader(event))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// without drops the variables named from env.
func without(env []string, names ...string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return slices.Contains(names, name)
	})
}

// TestRIERefusesEndpointOverrides: the release build of the function (the
// tags a deployment has) under the real Lambda emulator refuses to start
// when an endpoint, CA bundle or proxy variable is set, even one pointing at
// a working KMS (local-kms), and says why in one log line naming the
// variable. Without the overrides the same build starts and serves.
func TestRIERefusesEndpointOverrides(t *testing.T) {
	e := newAWSEnv(t)
	bin := releaseBuild.binary(t)
	const badEvent = `{"request_id":"r","count":0,"chain":"hoodi"}` // refused by the handler, if it runs
	base := func(home, tmp string) []string {
		return without(functionEnv(e, home, tmp), "AWS_ENDPOINT_URL_KMS", "AWS_ENDPOINT_URL_DYNAMODB")
	}
	for _, tc := range []struct{ name, variable, value string }{
		{"kms endpoint", "AWS_ENDPOINT_URL_KMS", e.kmsEP},
		{"any endpoint", "AWS_ENDPOINT_URL", e.kmsEP},
		{"dynamodb endpoint", "AWS_ENDPOINT_URL_DYNAMODB", e.ddbEP},
		{"ca bundle", "AWS_CA_BUNDLE", "/tmp/ca.pem"},
		{"proxy lower case", "https_proxy", "http://127.0.0.1:3128"},
		{"no_proxy", "NO_PROXY", "*"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startBinary(t, bin, func(home, tmp string) []string {
				return append(base(home, tmp), tc.variable+"="+tc.value)
			})
			status, body := f.rawInvoke(t, badEvent)
			if strings.Contains(body, "InvalidRequest") {
				t.Fatalf("the function started and served with %s set: HTTP %d %s", tc.variable, status, body)
			}
			// The emulator answers when the runtime exits; its output may
			// reach us a little later.
			var lines []string
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				lines = lines[:0]
				for _, l := range strings.Split(f.output.String(), "\n") {
					if strings.Contains(l, "refusing to start") {
						lines = append(lines, l)
					}
				}
				if len(lines) > 0 && strings.Contains(f.output.String(), "Init failed") || time.Now().After(deadline) {
					break
				}
			}
			if len(lines) != 1 || !strings.Contains(lines[0], tc.variable) || !strings.Contains(lines[0], `"level":"ERROR"`) {
				t.Fatalf("want one error line naming %s, got %q; output:\n%s", tc.variable, lines, f.output.String())
			}
			if strings.Contains(lines[0], tc.value) {
				t.Fatalf("the log line carries the variable's value: %s", lines[0])
			}
		})
	}
	t.Run("control: no override", func(t *testing.T) {
		f := startBinary(t, bin, base)
		_, body := f.rawInvoke(t, badEvent)
		if !strings.Contains(body, "InvalidRequest") || !strings.Contains(body, "count 0") {
			t.Fatalf("the release build did not serve without overrides: %s\n%s", body, f.output.String())
		}
	})
}
