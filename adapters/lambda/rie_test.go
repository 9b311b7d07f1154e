package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	lambdasdk "github.com/aws/aws-sdk-go-v2/service/lambda"
	"golang.org/x/crypto/scrypt"

	"github.com/ethkeygen/ethkeygen/adapters/lambda/handler"
	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/fanout"
	"github.com/ethkeygen/ethkeygen/internal/testenv"
	"github.com/ethkeygen/ethkeygen/keygen/keystore"
	"github.com/ethkeygen/ethkeygen/provenance"
	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/store/dynamostore"
)

const testAddress = "0x0f51bb10119727a7e5eA3538074fb341F56B09Ad"

// build is one build of the function binary, made once per test run.
type build struct {
	tags string
	once sync.Once
	dir  string
	path string
	err  error
}

var (
	// localBuild can reach local-kms and DynamoDB Local through
	// AWS_ENDPOINT_URL_*: it is built with the test-only tag.
	localBuild = &build{tags: "lambda.norpc,ethkeygen_localendpoints"}
	// releaseBuild has the tags of a real deployment: it refuses endpoint
	// overrides.
	releaseBuild = &build{tags: "lambda.norpc"}
)

func TestMain(m *testing.M) {
	code := m.Run()
	for _, b := range []*build{localBuild, releaseBuild} {
		if b.dir != "" {
			_ = os.RemoveAll(b.dir)
		}
	}
	os.Exit(code)
}

// bootstrap builds the function binary (the local-endpoints build) once per
// test run, for the host architecture (cgo on, as BLS signing needs).
func bootstrap(t *testing.T) string { return localBuild.binary(t) }

func (b *build) binary(t *testing.T) string {
	t.Helper()
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "ethkeygen-lambda-"); b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "bootstrap")
		// Without -trimpath, unlike release.Build: the test's binary then
		// shares every compiled package with the suite's other plain builds
		// (go vet, the CLI tests' binaries) instead of compiling the module
		// again; the release build's own flags are the release package's
		// tests' subject.
		cmd := exec.Command("go", "build", "-tags", b.tags, "-o", b.path, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build -tags %s: %v\n%s", b.tags, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// awsEnv is one test's slice of the local AWS: a fresh table and KMS key.
type awsEnv struct {
	kmsEP, ddbEP   string
	kmsCfg, ddbCfg aws.Config
	table, keyARN  string
	signingKey     string // the generator's record-signing key
	verifier       provenance.Verifier
	accessKey      string
	secretKey      string
	network        depositdata.Network
}

func newAWSEnv(t *testing.T) *awsEnv {
	t.Helper()
	testenv.RIEPath(t)
	e := &awsEnv{kmsEP: testenv.KMSEndpoint(t), ddbEP: testenv.DynamoDBEndpoint(t), network: depositdata.Hoodi}
	e.kmsCfg, e.ddbCfg = testenv.AWSConfig(t, e.kmsEP), testenv.AWSConfig(t, e.ddbEP)
	creds, err := e.ddbCfg.Credentials.Retrieve(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// DynamoDB Local keeps one database per access key and region: the
	// function must use the test's.
	e.accessKey, e.secretKey = creds.AccessKeyID, creds.SecretAccessKey
	e.table = "lambda-" + randHex(t, 6)
	if err := dynamostore.CreateTable(t.Context(), dynamodb.NewFromConfig(e.ddbCfg), e.table); err != nil {
		t.Fatal(err)
	}
	e.keyARN = testenv.NewKMSKey(t, e.kmsCfg)
	e.signingKey = testenv.NewKMSSigningKey(t, e.kmsCfg)
	if e.verifier, err = provenance.NewKMSVerifier(t.Context(), kms.NewFromConfig(e.kmsCfg), e.signingKey); err != nil {
		t.Fatal(err)
	}
	return e
}

func randHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func (e *awsEnv) store(t *testing.T) *dynamostore.Store {
	t.Helper()
	st, err := dynamostore.New(dynamodb.NewFromConfig(e.ddbCfg), e.table)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// syncBuffer collects a process's output.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// function is one emulator process serving the bootstrap binary.
type function struct {
	url    string
	output *syncBuffer // RIE's and the function's stdout and stderr
	dirs   []string    // the function's TMPDIR and working directory
}

// assertNothingWritten checks that the function left its TMPDIR and working
// directory empty.
func (f *function) assertNothingWritten(t *testing.T) {
	t.Helper()
	for _, d := range f.dirs {
		entries, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 0 {
			t.Fatalf("the function wrote %s into %s", entries[0].Name(), d)
		}
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startFunction runs aws-lambda-rie with the bootstrap binary, configured
// like the deployed function but pointed at local-kms and DynamoDB Local.
func startFunction(t *testing.T, e *awsEnv, extra ...string) *function {
	t.Helper()
	return startBinary(t, bootstrap(t), func(home, tmp string) []string { return append(functionEnv(e, home, tmp), extra...) })
}

// functionEnv is the function's environment: a clean one, with nothing of
// the host's AWS configuration, configured like the deployed function but
// pointed at local-kms and DynamoDB Local.
func functionEnv(e *awsEnv, home, tmp string) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"TMPDIR=" + tmp,
		"AWS_REGION=" + testenv.Region,
		"AWS_ACCESS_KEY_ID=" + e.accessKey,
		"AWS_SECRET_ACCESS_KEY=" + e.secretKey,
		"AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_ENDPOINT_URL_KMS=" + e.kmsEP,
		"AWS_ENDPOINT_URL_DYNAMODB=" + e.ddbEP,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=1024",
		"AWS_LAMBDA_FUNCTION_TIMEOUT=300",
		handler.EnvKMSKeyID + "=" + e.keyARN,
		"ETHKEYGEN_SIGNING_KEY_ID=" + e.signingKey,
		handler.EnvTable + "=" + e.table,
		handler.EnvAllowedChains + "=hoodi,sepolia",
		handler.EnvAllowedWithdrawals + "=" + testAddress + ",bls",
		handler.EnvMaxCount + "=60",
	}
}

// startBinary runs aws-lambda-rie with a build of the function and the
// environment env returns for its working directory and TMPDIR.
func startBinary(t *testing.T, bin string, env func(home, tmp string) []string) *function {
	t.Helper()
	rie := testenv.RIEPath(t)
	addr, runtimeAddr := freePort(t), freePort(t)
	cmd := exec.Command(rie, "--log-level", "error",
		"--runtime-interface-emulator-address", addr, "--runtime-api-address", runtimeAddr, bin)
	cmd.Dir = t.TempDir()
	tmp := t.TempDir()
	// A clean environment: nothing of the host's AWS configuration.
	cmd.Env = env(cmd.Dir, tmp)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("emulator output:\n%s", out.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-done:
			t.Fatalf("aws-lambda-rie exited:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("aws-lambda-rie did not listen on %s:\n%s", addr, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &function{url: "http://" + addr + "/2015-03-31/functions/function/invocations", output: out, dirs: []string{cmd.Dir, tmp}}
}

// invoke posts an event as Lambda's Invoke API would and returns the body.
func (f *function) invoke(t *testing.T, event string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
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
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("invoke: HTTP %d: %s", resp.StatusCode, body)
	}
	return body
}

type lambdaError struct {
	ErrorMessage string `json:"errorMessage"`
	ErrorType    string `json:"errorType"`
}

// generate invokes and decodes a successful response strictly.
func (f *function) generate(t *testing.T, spec custody.Spec) (handler.Response, []byte) {
	t.Helper()
	event, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	body := f.invoke(t, string(event))
	var le lambdaError
	if json.Unmarshal(body, &le) == nil && le.ErrorType != "" {
		t.Fatalf("invocation failed: %s: %s", le.ErrorType, le.ErrorMessage)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var r handler.Response
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("response %s: %v", body, err)
	}
	return r, body
}

// checkResponse checks a response against its request and the store: slots
// in order, each the stored, generator-signed record of that slot, whose
// deposit verifies. The response itself carries no deposit.
func checkResponse(t *testing.T, e *awsEnv, r handler.Response, spec custody.Spec, network depositdata.Network) []*depositdata.Deposit {
	t.Helper()
	if r.RequestID != spec.RequestID || len(r.Validators) != spec.Count {
		t.Fatalf("response for %q: %d validators, want %d", r.RequestID, len(r.Validators), spec.Count)
	}
	st := e.store(t)
	var deps []*depositdata.Deposit
	for i, v := range r.Validators {
		rec, err := st.GetSlot(t.Context(), spec.RequestID, i)
		if err != nil || v.Slot != i || v.Pubkey != rec.Pubkey {
			t.Fatalf("validator %d: slot %d pubkey %s is not the stored one (%v)", i, v.Slot, v.Pubkey, err)
		}
		checked, err := custody.CheckRecord(e.verifier, rec)
		if err != nil {
			t.Fatalf("validator %d: %v", i, err)
		}
		if err := checked.Deposit.Verify(network); err != nil {
			t.Fatalf("deposit %d: %v", i, err)
		}
		deps = append(deps, checked.Deposit)
	}
	return deps
}

// secrets are opened secrets, kept as strings to search for.
type secrets struct {
	mnemonics, keys, passwords []string
}

// openAll opens every validator of r with the KMS opener and checks the
// key derives the pubkey; it returns the secrets to look for elsewhere.
func openAll(t *testing.T, e *awsEnv, r handler.Response, into *secrets) {
	t.Helper()
	op := custody.NewOpener(e.store(t), envelope.NewKMSOpener(kms.NewFromConfig(e.kmsCfg)), e.verifier)
	for _, v := range r.Validators {
		s, rec, err := op.Open(t.Context(), v.Pubkey)
		if err != nil {
			t.Fatalf("open %s: %v", v.Pubkey, err)
		}
		if hex.EncodeToString(s.SigningKey().PublicKey()) != v.Pubkey || rec.RequestID != r.RequestID || rec.Slot != v.Slot {
			t.Fatalf("opened %s: wrong key or record", v.Pubkey)
		}
		if m := s.UnsafeMnemonic(); m != nil {
			into.mnemonics = append(into.mnemonics, string(m))
		} else {
			t.Fatalf("validator %s: no mnemonic sealed with the key", v.Pubkey)
		}
		into.keys = append(into.keys, hex.EncodeToString(s.SigningKey().UnsafeBytes()))
		if p := s.UnsafePassword(); p != nil {
			into.passwords = append(into.passwords, string(p))
		}
		s.Destroy()
	}
}

// assertNoSecrets fails if text holds any opened secret, or any three
// consecutive words of a mnemonic.
func assertNoSecrets(t *testing.T, what, text string, s *secrets) {
	t.Helper()
	lower := strings.ToLower(text)
	for _, k := range s.keys {
		if strings.Contains(lower, k) {
			t.Fatalf("%s contains a signing key", what)
		}
	}
	for _, p := range s.passwords {
		if strings.Contains(text, p) {
			t.Fatalf("%s contains a keystore password", what)
		}
	}
	for _, m := range s.mnemonics {
		words := strings.Fields(m)
		for i := 0; i+3 <= len(words); i++ {
			if strings.Contains(lower, strings.Join(words[i:i+3], " ")) {
				t.Fatalf("%s contains a mnemonic's words", what)
			}
		}
	}
}

// assertPublicOnly checks that a response body has exactly the public
// fields.
func assertPublicOnly(t *testing.T, body []byte) {
	t.Helper()
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatal(err)
	}
	for k := range top {
		switch k {
		case "request_id", "created", "validators", "deposit_data":
		default:
			t.Fatalf("response has field %q", k)
		}
	}
	for _, word := range []string{"sealed", "secret", "mnemonic", "password", "keystore", "crypto", "ciphertext"} {
		if bytes.Contains(bytes.ToLower(body), []byte(word)) {
			t.Fatalf("response mentions %q", word)
		}
	}
}

func countRecords(t *testing.T, e *awsEnv, requestID string) int {
	t.Helper()
	n := 0
	for _, err := range e.store(t).Query(t.Context(), store.Filter{RequestID: requestID}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

func TestRIEBatchRetryAndNoSecrets(t *testing.T) {
	e := newAWSEnv(t)
	f := startFunction(t, e)
	var opened secrets

	spec := custody.Spec{RequestID: "run-1/b00000", Count: 6, Chain: "hoodi", WithdrawalAddress: testAddress, SecretFormat: "raw"}
	start := time.Now()
	r1, body1 := f.generate(t, spec)
	t.Logf("%d raw validators in %v", spec.Count, time.Since(start))
	deps1 := checkResponse(t, e, r1, spec, e.network)
	if r1.Created != spec.Count {
		t.Fatalf("created %d, want %d", r1.Created, spec.Count)
	}
	for _, d := range deps1 {
		if !strings.HasPrefix(d.WithdrawalCredentials, "01") || d.Amount != depositdata.MaxAmount {
			t.Fatalf("deposit %s: credentials %s amount %d", d.Pubkey, d.WithdrawalCredentials, d.Amount)
		}
	}
	assertPublicOnly(t, body1)
	openAll(t, e, r1, &opened)

	t.Run("retried request id", func(t *testing.T) {
		r2, body2 := f.generate(t, spec)
		if r2.Created != 0 {
			t.Fatalf("retry created %d", r2.Created)
		}
		checkResponse(t, e, r2, spec, e.network)
		for i := range r1.Validators {
			if r1.Validators[i] != r2.Validators[i] {
				t.Fatalf("retry returned another validator at slot %d", i)
			}
		}
		assertPublicOnly(t, body2)
		if n := countRecords(t, e, spec.RequestID); n != spec.Count {
			t.Fatalf("table holds %d records of %s, want %d", n, spec.RequestID, spec.Count)
		}
	})

	t.Run("two invocations share no secret", func(t *testing.T) {
		spec2 := spec
		spec2.RequestID = "run-1/b00001"
		r3, body3 := f.generate(t, spec2)
		checkResponse(t, e, r3, spec2, e.network)
		assertPublicOnly(t, body3)
		var second secrets
		openAll(t, e, r3, &second)
		seen := map[string]bool{}
		for _, m := range append(append([]string{}, opened.mnemonics...), second.mnemonics...) {
			if seen[m] {
				t.Fatal("a mnemonic was used twice")
			}
			seen[m] = true
		}
		for _, v := range r3.Validators {
			for _, w := range r1.Validators {
				if v.Pubkey == w.Pubkey {
					t.Fatal("a pubkey was returned by two requests")
				}
			}
		}
		opened.mnemonics = append(opened.mnemonics, second.mnemonics...)
		opened.keys = append(opened.keys, second.keys...)
		assertNoSecrets(t, "second response", string(body3), &opened)
	})

	t.Run("keystore format", func(t *testing.T) {
		ks := custody.Spec{RequestID: "run-ks", Count: 1, Chain: "sepolia", WithdrawalAddress: testAddress}
		start := time.Now()
		r, body := f.generate(t, ks)
		t.Logf("%d keystore validator in %v", ks.Count, time.Since(start))
		checkResponse(t, e, r, ks, depositdata.Sepolia)
		assertPublicOnly(t, body)
		openAll(t, e, r, &opened)
		if len(opened.passwords) == 0 {
			t.Fatal("keystore secret has no password")
		}
		assertNoSecrets(t, "keystore response", string(body), &opened)
	})

	assertNoSecrets(t, "first response", string(body1), &opened)
	// Give the emulator a moment to flush the last invocation's log.
	time.Sleep(200 * time.Millisecond)
	assertNoSecrets(t, "function and emulator output", f.output.String(), &opened)
	f.assertNothingWritten(t)
}

func TestRIEBadEvents(t *testing.T) {
	e := newAWSEnv(t)
	f := startFunction(t, e)
	for _, c := range []struct {
		name, event, want string
	}{
		{"unknown chain", `{"request_id":"r","count":1,"chain":"goerli"}`, `unknown network "goerli"`},
		{"chain not allowed", `{"request_id":"r","count":1,"chain":"mainnet"}`, `chain "mainnet" is not allowed`},
		{"bad checksum address", `{"request_id":"r","count":1,"chain":"hoodi","withdrawal_address":"0x0f51bb10119727a7e5eA3538074fb341F56B09AD"}`, "checksum"},
		{"count 0", `{"request_id":"r","count":0,"chain":"hoodi"}`, "count 0"},
		{"count over limit", `{"request_id":"r","count":61,"chain":"hoodi"}`, "count 61"},
		{"malformed JSON", `{"request_id":"r","count":1,`, "unexpected EOF"},
		{"not an object", `[1,2]`, "cannot unmarshal array"},
		{"unknown field", `{"request_id":"r","count":1,"chain":"hoodi","mnemonic":"abandon"}`, `unknown field "mnemonic"`},
		{"amount too high", `{"request_id":"r","count":1,"chain":"hoodi","amount_gwei":33000000000}`, "amount"},
		{"amount too low", `{"request_id":"r","count":1,"chain":"hoodi","amount_gwei":999999999}`, "amount"},
		{"compounding without address", `{"request_id":"r","count":1,"chain":"hoodi","compounding":true}`, "withdrawal address"},
		{"no request id", `{"count":1,"chain":"hoodi"}`, "request_id is required"},
		{"wrong fork version", `{"request_id":"r","count":1,"chain":"hoodi","fork_version":"0x00000000"}`, "fork version"},
		{"bad secret format", `{"request_id":"r","count":1,"chain":"hoodi","secret_format":"plain"}`, "secret format"},
		{"no withdrawal choice", `{"request_id":"r","count":1,"chain":"hoodi"}`, "bls_withdrawal"},
		{"explicit zero amount", `{"request_id":"r","count":1,"chain":"hoodi","withdrawal_address":"0x0f51bb10119727a7e5eA3538074fb341F56B09Ad","amount_gwei":0}`, "amount_gwei 0"},
		{"0x01 under 32 ETH", `{"request_id":"r","count":1,"chain":"hoodi","withdrawal_address":"0x0f51bb10119727a7e5eA3538074fb341F56B09Ad","amount_gwei":1000000000}`, "never activates"},
	} {
		t.Run(c.name, func(t *testing.T) {
			body := f.invoke(t, c.event)
			var le lambdaError
			if err := json.Unmarshal(body, &le); err != nil {
				t.Fatalf("response %s: %v", body, err)
			}
			if le.ErrorType != "InvalidRequest" || !strings.Contains(le.ErrorMessage, c.want) || strings.Contains(le.ErrorMessage, "\n") {
				t.Fatalf("got %s: %q, want InvalidRequest naming %q on one line", le.ErrorType, le.ErrorMessage, c.want)
			}
		})
	}
	// The function keeps serving, and nothing was stored for "r".
	spec := custody.Spec{RequestID: "after-errors", Count: 2, Chain: "hoodi", BLSWithdrawal: true, SecretFormat: "raw"}
	r, _ := f.generate(t, spec)
	checkResponse(t, e, r, spec, e.network)
	if n := countRecords(t, e, "r"); n != 0 {
		t.Fatalf("refused events stored %d records", n)
	}
	// Reusing a request id with other parameters is refused too.
	body := f.invoke(t, `{"request_id":"after-errors","count":3,"chain":"hoodi","bls_withdrawal":true,"secret_format":"raw"}`)
	var le lambdaError
	if err := json.Unmarshal(body, &le); err != nil || le.ErrorType != "InvalidRequest" || !strings.Contains(le.ErrorMessage, "already used") {
		t.Fatalf("reused request id: %s", body)
	}
}

// TestRIETimings times one invocation of 50 raw and 2 keystore validators
// and checks their responses; -v shows the figures (per validator, and as
// scrypt runs measured in the same process).
func TestRIETimings(t *testing.T) {
	e := newAWSEnv(t)
	f := startFunction(t, e)
	// The bare KDF cost in this process, now: the machine may be shared,
	// so the ratio to it says more than the absolute figure.
	start := time.Now()
	if _, err := scrypt.Key([]byte("password"), make([]byte, 32), keystore.ScryptN, keystore.ScryptR, keystore.ScryptP, 32); err != nil {
		t.Fatal(err)
	}
	kdf := time.Since(start)
	t.Logf("one scrypt run (n=%d): %v", keystore.ScryptN, kdf.Round(time.Millisecond))
	for _, c := range []custody.Spec{
		{RequestID: "t-raw", Count: 50, Chain: "hoodi", WithdrawalAddress: testAddress, SecretFormat: "raw"},
		{RequestID: "t-ks", Count: 2, Chain: "hoodi", WithdrawalAddress: testAddress},
	} {
		start := time.Now()
		r, _ := f.generate(t, c)
		d := time.Since(start)
		checkResponse(t, e, r, c, e.network)
		per := d / time.Duration(c.Count)
		t.Logf("%s: %d validators in %v (%v per validator, %.2f scrypt runs)", c.RequestID, c.Count, d.Round(time.Millisecond),
			per.Round(time.Millisecond), float64(per)/float64(kdf))
	}
}

// rieClients hands each invocation to an idle emulator: one emulator serves
// one invocation at a time, as one Lambda execution environment does.
type rieClients struct{ idle chan *lambdasdk.Client }

func (p *rieClients) Invoke(ctx context.Context, in *lambdasdk.InvokeInput, optFns ...func(*lambdasdk.Options)) (*lambdasdk.InvokeOutput, error) {
	var c *lambdasdk.Client
	select {
	case c = <-p.idle:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { p.idle <- c }()
	return c.Invoke(ctx, in, optFns...)
}

// TestRIEFanOut runs a fanned-out run through the real Lambda SDK client
// against two emulator processes (the emulator serves the Invoke API's
// path for the function named "function"), then runs it again.
func TestRIEFanOut(t *testing.T) {
	e := newAWSEnv(t)
	pool := &rieClients{idle: make(chan *lambdasdk.Client, 2)}
	for range 2 {
		f := startFunction(t, e)
		base := strings.TrimSuffix(f.url, "/2015-03-31/functions/function/invocations")
		cfg := testenv.AWSConfig(t, base)
		pool.idle <- lambdasdk.NewFromConfig(cfg)
	}
	p := fanout.Plan{Function: "function", Total: 10, BatchSize: 3, Concurrency: 2, Backoff: 10 * time.Millisecond,
		Spec: custody.Spec{RequestID: "fan-" + randHex(t, 4), Chain: "hoodi", WithdrawalAddress: testAddress, SecretFormat: "raw"}}
	res, err := fanout.Run(t.Context(), pool, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Pubkeys) != 10 || res.Created != 10 || len(res.Batches) != 4 {
		t.Fatalf("%d validators, %d created, %d batches", len(res.Pubkeys), res.Created, len(res.Batches))
	}
	again, err := fanout.Run(t.Context(), pool, p)
	if err != nil {
		t.Fatal(err)
	}
	if again.Created != 0 {
		t.Fatalf("second run created %d", again.Created)
	}
	n := 0
	for i := range p.Batches() {
		n += countRecords(t, e, fanout.BatchID(p.Spec.RequestID, i))
		for j, pk := range again.Batches[i].Pubkeys {
			if pk != res.Batches[i].Pubkeys[j] {
				t.Fatalf("batch %d slot %d changed on the second run", i, j)
			}
		}
	}
	if n != 10 {
		t.Fatalf("table holds %d records of the run, want 10", n)
	}
	// A function error through the real client: rejected, not retried.
	bad := p
	bad.Spec.Chain = "mainnet"
	if _, err := fanout.Run(t.Context(), pool, bad); !errors.Is(err, fanout.ErrRejected) {
		t.Fatalf("chain not allowed: %v", err)
	}
}
