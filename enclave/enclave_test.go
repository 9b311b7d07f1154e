//go:build !ethkeygen_fuzzonly

package enclave_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	e2types "github.com/wealdtech/go-eth2-types/v2"
	keystorev4 "github.com/wealdtech/go-eth2-wallet-encryptor-keystorev4"
	"gopkg.in/yaml.v3"

	"github.com/ethkeygen/ethkeygen/attest/attesttest"
	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/enclave"
	"github.com/ethkeygen/ethkeygen/enclave/parent"
	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/envelope/envelopetest"
	"github.com/ethkeygen/ethkeygen/provenance"
	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/store/sqlitestore"
	"github.com/ethkeygen/ethkeygen/web3signer"
)

const hoodiRoot = "0x212f13fc4df078b6cb7db228f1c8307566dcecf900867401a92023d7ba99cb5f"

// socketPair returns two connected Unix stream sockets: a local stand-in
// for vsock with real kernel buffering.
func socketPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int, name string) net.Conn {
		f := os.NewFile(uintptr(fd), name)
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	return conn(fds[0], "parent"), conn(fds[1], "enclave")
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func debugLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

var testCreds = enclave.Credentials{
	AccessKeyID:     "ASIAEXAMPLEEXAMPLE12",
	SecretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEYsecret",
	SessionToken:    "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKENsecretsecret",
	Expires:         time.Now().Add(time.Hour).UTC().Truncate(time.Second),
}

type world struct {
	t         *testing.T
	noHistory bool // the operator says the taken-over keys have no history
	st        store.Store
	kms       *envelopetest.KMS
	rkms      *envelopetest.RecipientKMS
	nsm       *attesttest.NSM
	pubkeys   []string
	dir       string
	keyDir    string
	ichange   string
	parLog    *syncBuffer
	encLog    *syncBuffer
	gotCreds  enclave.Credentials
	ledger    store.Ledger
	verifier  provenance.Verifier
	cust      *custody.Custodian
	signer    string // the enclave's name in the ledger
}

// newWorld generates validators with the pipeline into an embedded store,
// sealed with the fake KMS: keystore-format and raw-format ones.
func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, kms: envelopetest.NewKMS(), nsm: attesttest.New(attesttest.Image()), parLog: &syncBuffer{}, encLog: &syncBuffer{}}
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w.st = st
	arn := w.kms.CreateKey()
	w.rkms = envelopetest.NewRecipientKMS(w.kms, envelopetest.RecipientPolicy{Roots: w.nsm.Roots(), ImageSha384: w.nsm.ImageSha384()})
	keys := t.TempDir()
	signer, _, err := provenance.LoadOrCreateLocalSigner(keys)
	if err != nil {
		t.Fatal(err)
	}
	if w.verifier, err = provenance.LoadLocalVerifier(keys); err != nil {
		t.Fatal(err)
	}
	ledger, err := sqlitestore.OpenLedger(context.Background(), filepath.Join(t.TempDir(), "store.db.ledger"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ledger.Close() })
	w.ledger, w.signer = ledger, "enclave:test:16"
	if w.cust, err = custody.NewCustodian(st, ledger, w.verifier); err != nil {
		t.Fatal(err)
	}
	gen, err := custody.NewGenerator(st, envelope.NewKMSSealer(w.kms, arn), signer, custody.WithInsecureKDFCost(t, 16))
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []custody.Request{
		{ID: "ks", Count: 3, Network: depositdata.Hoodi, KeysPerMnemonic: 2},
		{ID: "raw", Count: 2, Network: depositdata.Hoodi, Format: custody.FormatRaw},
	} {
		res, err := gen.Generate(context.Background(), req, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range res.Validators {
			w.pubkeys = append(w.pubkeys, v.Pubkey)
		}
		// Only keys whose deposits were handed out are loaded.
		if _, err := w.cust.Export(context.Background(), custody.ExportRequest{RequestID: req.ID, BLSWithdrawal: true}); err != nil {
			t.Fatal(err)
		}
	}
	w.dir = t.TempDir() // stands for the enclave's tmpfs
	w.keyDir = filepath.Join(w.dir, "keys")
	w.ichange = filepath.Join(w.dir, "slashing-protection.json")
	return w
}

func (w *world) config() enclave.Config {
	return enclave.Config{
		KeyDir: w.keyDir, InterchangeFile: w.ichange, Logger: debugLogger(w.encLog), Verifier: w.verifier,
		NewOpener: func(ctx context.Context, region string, creds enclave.Credentials) (envelope.Opener, error) {
			w.gotCreds = creds
			return envelope.NewNitroKMSOpener(w.rkms, w.nsm), nil
		},
	}
}

// load runs one exchange over a socket pair.
func (w *world) load(pubkeys []string, takeover bool) (*enclave.Result, error, error) {
	pc, ec := socketPair(w.t)
	var serveErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		serveErr = enclave.Serve(context.Background(), ec, w.config())
	}()
	res, err := parent.Load(context.Background(), pc, w.cust, parent.Request{
		Region: "eu-west-1", Credentials: testCreds, GenesisValidatorsRoot: hoodiRoot, Takeover: takeover, Pubkeys: pubkeys,
		Signer: w.signer, NoSlashingHistory: w.noHistory,
	}, debugLogger(w.parLog))
	pc.Close() // a refused claim sends nothing: the enclave sees the parent hang up
	<-done
	return res, err, serveErr
}

func (w *world) assertNothingLoaded() {
	w.t.Helper()
	for _, p := range []string{w.keyDir, w.ichange} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			w.t.Fatalf("%s exists after a refused load", p)
		}
	}
}

type keyConfig struct {
	Type                 string `yaml:"type"`
	KeyType              string `yaml:"keyType"`
	KeystoreFile         string `yaml:"keystoreFile"`
	KeystorePasswordFile string `yaml:"keystorePasswordFile"`
}

// verifyKeyDir checks every key in the directory with keystorev4 and
// against the store, and returns the pubkeys found.
func (w *world) verifyKeyDir() map[string]bool {
	t := w.t
	t.Helper()
	if err := e2types.InitBLS(); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(w.keyDir)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		b, _ := os.ReadFile(filepath.Join(w.keyDir, e.Name()))
		var c keyConfig
		if err := yaml.Unmarshal(b, &c); err != nil || c.Type != "file-keystore" || c.KeyType != "BLS" {
			t.Fatalf("%s: %v %+v", e.Name(), err, c)
		}
		// Relative to the key directory, as Web3Signer resolves them.
		ksJSON, _ := os.ReadFile(filepath.Join(w.keyDir, c.KeystoreFile))
		pw, _ := os.ReadFile(filepath.Join(w.keyDir, c.KeystorePasswordFile))
		var doc struct {
			Crypto map[string]any `json:"crypto"`
		}
		if err := json.Unmarshal(ksJSON, &doc); err != nil {
			t.Fatal(err)
		}
		secret, err := keystorev4.New().Decrypt(doc.Crypto, string(pw))
		if err != nil {
			t.Fatalf("%s: keystorev4: %v", e.Name(), err)
		}
		sk, err := e2types.BLSPrivateKeyFromBytes(secret)
		if err != nil {
			t.Fatal(err)
		}
		pk := hex.EncodeToString(sk.PublicKey().Marshal())
		if e.Name() != "0x"+pk+".yaml" {
			t.Fatalf("%s holds the key of %s", e.Name(), pk)
		}
		rec, err := w.st.Get(context.Background(), pk)
		if err != nil {
			t.Fatalf("pubkey %s is not in the store: %v", pk, err)
		}
		var dd struct {
			Pubkey string `json:"pubkey"`
		}
		if err := json.Unmarshal(rec.DepositData, &dd); err != nil || dd.Pubkey != pk {
			t.Fatalf("deposit data of %s names %s", pk, dd.Pubkey)
		}
		found[pk] = true
	}
	return found
}

// secrets returns every secret that must never be logged: signing keys,
// keystore passwords, mnemonics (opened independently with the plain fake
// KMS), the credentials, and the password files written.
func (w *world) secrets() []string {
	t := w.t
	t.Helper()
	op := custody.NewOpener(w.st, envelope.NewKMSOpener(w.kms), w.verifier)
	out := []string{testCreds.SecretAccessKey, testCreds.SessionToken}
	for _, pk := range w.pubkeys {
		s, _, err := op.Open(context.Background(), pk)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, hex.EncodeToString(s.SigningKey().UnsafeBytes()))
		if p := s.UnsafePassword(); len(p) > 0 {
			out = append(out, string(p))
		}
		if m := s.UnsafeMnemonic(); len(m) > 0 {
			out = append(out, string(m))
			words := strings.Fields(string(m))
			out = append(out, strings.Join(words[:4], " ")) // any run of words
		}
		s.Destroy()
	}
	if entries, err := os.ReadDir(w.keyDir); err == nil {
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), web3signer.PasswordSuffix) {
				b, _ := os.ReadFile(filepath.Join(w.keyDir, e.Name()))
				out = append(out, string(b))
			}
		}
	}
	return out
}

func (w *world) assertLogsClean() {
	w.t.Helper()
	logs := w.parLog.String() + w.encLog.String()
	if logs == "" {
		w.t.Fatal("no logs written")
	}
	for _, s := range w.secrets() {
		if len(s) >= 8 && (strings.Contains(logs, s) || strings.Contains(logs, strings.ToUpper(s))) {
			w.t.Fatalf("a secret appears in the logs")
		}
	}
	for _, marker := range []string{"PRIVATE KEY", "secret_access_key", "session_token"} {
		if strings.Contains(logs, marker) {
			w.t.Fatalf("logs contain %q", marker)
		}
	}
}

func TestEndToEnd(t *testing.T) {
	w := newWorld(t)
	res, err, serveErr := w.load(w.pubkeys, false)
	if err != nil || serveErr != nil {
		t.Fatalf("parent: %v; enclave: %v", err, serveErr)
	}
	if !res.OK || len(res.Keys) != len(w.pubkeys) {
		t.Fatalf("result %+v", res)
	}
	for _, k := range res.Keys {
		if k.Status != enclave.KeyLoaded {
			t.Fatalf("key %s: %s", k.Pubkey, k.Status)
		}
	}
	if w.gotCreds.SecretAccessKey != testCreds.SecretAccessKey || w.gotCreds.SessionToken != testCreds.SessionToken {
		t.Fatal("credentials did not arrive")
	}
	found := w.verifyKeyDir()
	for _, pk := range w.pubkeys {
		if !found[pk] {
			t.Fatalf("key %s not loaded", pk)
		}
	}
	if len(found) != len(w.pubkeys) {
		t.Fatalf("%d keys in the directory, want %d", len(found), len(w.pubkeys))
	}
	// Every Decrypt went through an attested Recipient.
	if got := w.rkms.Attested(); got != len(w.pubkeys) {
		t.Fatalf("%d attested decrypts, want %d", got, len(w.pubkeys))
	}
	var ic web3signer.Interchange
	b, err := os.ReadFile(w.ichange)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ic); err != nil {
		t.Fatal(err)
	}
	if ic.Metadata.InterchangeFormatVersion != "5" || ic.Metadata.GenesisValidatorsRoot != hoodiRoot || len(ic.Data) != len(w.pubkeys) {
		t.Fatalf("interchange %s", b)
	}
	w.assertLogsClean()
	// The loaded keys are live on this enclave in the ledger: loading them
	// on another signer is refused unless it is a takeover.
	for _, pk := range w.pubkeys {
		_, ks, err := w.cust.Get(context.Background(), pk)
		if err != nil || ks.State != store.StatusDeposited || ks.Signer != w.signer {
			t.Fatalf("%s: state %+v, %v", pk, ks, err)
		}
	}
	os.RemoveAll(w.keyDir)
	os.Remove(w.ichange)
	w.signer = "enclave:other:17"
	if _, err, _ := w.load(w.pubkeys, false); !errors.Is(err, custody.ErrClaimed) {
		t.Fatalf("load on another enclave without takeover: %v", err)
	}
	w.assertNothingLoaded()
}

func TestStatusRefusals(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	// Key 0 is live on another signer; key 1 is exported only.
	if _, err := w.cust.ClaimForSigner(ctx, custody.LoadRequest{Signer: "web3signer-dir:elsewhere", Pubkeys: w.pubkeys[:1]}); err != nil {
		t.Fatal(err)
	}

	t.Run("deposited without takeover", func(t *testing.T) {
		_, err, _ := w.load(w.pubkeys[:3], false)
		if !errors.Is(err, custody.ErrClaimed) {
			t.Fatalf("parent %v", err)
		}
		for _, pk := range w.pubkeys[1:3] {
			if _, ks, _ := w.cust.Get(ctx, pk); ks.State != store.StatusExported {
				t.Fatalf("a refused load left %s %s", pk[:8], ks.State)
			}
		}
		if w.kms.Calls(envelopetest.OpDecrypt) != 0 {
			t.Fatal("a refused load still called KMS")
		}
		w.assertNothingLoaded()
	})
	t.Run("deposited with takeover, no history", func(t *testing.T) {
		res, err, _ := w.load(w.pubkeys[:3], true)
		if !errors.Is(err, enclave.ErrRefused) || res == nil || res.Keys[0].Status != enclave.KeyRefused || !res.Keys[0].NeedsSlashingHistory {
			t.Fatalf("takeover without history: %+v %v", res, err)
		}
		w.assertNothingLoaded()
	})
	t.Run("deposited with takeover", func(t *testing.T) {
		w.noHistory = true // the operator's word that key 0 never signed elsewhere
		defer func() { w.noHistory = false }()
		res, err, serveErr := w.load(w.pubkeys[:3], true)
		if err != nil || serveErr != nil {
			t.Fatalf("parent %v, enclave %v", err, serveErr)
		}
		if !res.Keys[0].NeedsSlashingHistory || res.Keys[1].NeedsSlashingHistory {
			t.Fatalf("result %+v", res)
		}
		if len(w.verifyKeyDir()) != 3 {
			t.Fatal("not all keys loaded")
		}
		b, _ := os.ReadFile(w.ichange)
		if !strings.Contains(string(b), w.pubkeys[0]) || !strings.Contains(string(b), w.pubkeys[1]) {
			t.Fatalf("interchange must list every loaded key: %s", b)
		}
		w.assertLogsClean()
		os.RemoveAll(w.keyDir)
		os.Remove(w.ichange)
	})
	t.Run("retired, even with takeover", func(t *testing.T) {
		if _, err := w.cust.Retire(ctx, w.pubkeys[2], "test"); err != nil {
			t.Fatal(err)
		}
		w.signer = "enclave:third:18"
		_, err, _ := w.load(w.pubkeys[2:4], true)
		if !errors.Is(err, custody.ErrState) {
			t.Fatalf("got %v", err)
		}
		w.assertNothingLoaded()
	})
}

func TestAttestationPolicyMismatch(t *testing.T) {
	w := newWorld(t)
	w.rkms.Policy.ImageSha384 = attesttest.New(attesttest.Image()).ImageSha384()
	res, err, serveErr := w.load(w.pubkeys, false)
	if !errors.Is(err, enclave.ErrRefused) || !errors.Is(serveErr, enclave.ErrRefused) {
		t.Fatalf("parent %v, enclave %v", err, serveErr)
	}
	for _, k := range res.Keys {
		if k.Status != enclave.KeyFailed || k.Reason != "key service refused or failed" {
			t.Fatalf("key %+v", k)
		}
	}
	if !strings.Contains(w.encLog.String(), "AccessDeniedException") {
		t.Fatal("the enclave log does not say KMS denied access")
	}
	w.assertNothingLoaded()
	w.assertLogsClean()
}

func TestTransportFaults(t *testing.T) {
	t.Run("truncated message", func(t *testing.T) {
		w := newWorld(t)
		pc, ec := socketPair(t)
		go func() {
			var hdr [4]byte
			binary.BigEndian.PutUint32(hdr[:], 1000)
			pc.Write(hdr[:])
			pc.Write([]byte(`{"type":"load","load":{`))
			pc.(*net.UnixConn).CloseWrite()
		}()
		err := enclave.Serve(context.Background(), ec, w.config())
		if !errors.Is(err, enclave.ErrTruncated) {
			t.Fatalf("got %v, want ErrTruncated", err)
		}
		if !strings.Contains(err.Error(), "truncated") {
			t.Fatalf("unclear error: %v", err)
		}
		w.assertNothingLoaded()
	})
	t.Run("truncated length prefix", func(t *testing.T) {
		_, err := enclave.ReadMessage(bytes.NewReader([]byte{0, 0}), 0)
		if !errors.Is(err, enclave.ErrTruncated) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("oversized message", func(t *testing.T) {
		w := newWorld(t)
		cfg := w.config()
		cfg.MaxMessageSize = 4 << 10 // smaller than the request of 5 records
		pc, ec := socketPair(t)
		var serveErr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			serveErr = enclave.Serve(context.Background(), ec, cfg)
			ec.Close()
		}()
		res, err := parent.Load(context.Background(), pc, w.cust, parent.Request{
			Region: "eu-west-1", Credentials: testCreds, GenesisValidatorsRoot: hoodiRoot, Pubkeys: w.pubkeys, Signer: w.signer,
		}, debugLogger(w.parLog))
		<-done
		if !errors.Is(serveErr, enclave.ErrTooLarge) {
			t.Fatalf("enclave: got %v, want ErrTooLarge", serveErr)
		}
		if !errors.Is(err, enclave.ErrRefused) || res == nil || !strings.Contains(res.Error, "too large") {
			t.Fatalf("parent: got %v, %+v", err, res)
		}
		if w.kms.Calls(envelopetest.OpDecrypt) != 0 {
			t.Fatal("KMS was called")
		}
		w.assertNothingLoaded()
		w.assertLogsClean()
	})
	t.Run("oversized announcement is not read", func(t *testing.T) {
		var hdr [4]byte
		binary.BigEndian.PutUint32(hdr[:], enclave.MaxMessageSize+1)
		_, err := enclave.ReadMessage(io.MultiReader(bytes.NewReader(hdr[:]), neverReader{t}), 0)
		if !errors.Is(err, enclave.ErrTooLarge) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("protocol errors", func(t *testing.T) {
		for name, body := range map[string]string{
			"unknown field":     `{"type":"load","load":{"version":1},"plaintext":"x"}`,
			"result to enclave": `{"type":"result","result":{"ok":true}}`,
			"no payload":        `{"type":"load"}`,
			"two values":        `{"type":"load","load":{}} {}`,
			"not json":          `load`,
		} {
			t.Run(name, func(t *testing.T) {
				w := newWorld(t)
				pc, ec := socketPair(t)
				go func() {
					var hdr [4]byte
					binary.BigEndian.PutUint32(hdr[:], uint32(len(body)))
					pc.Write(append(hdr[:], body...))
				}()
				err := enclave.Serve(context.Background(), ec, w.config())
				if !errors.Is(err, enclave.ErrProtocol) {
					t.Fatalf("got %v, want ErrProtocol", err)
				}
				w.assertNothingLoaded()
			})
		}
	})
	t.Run("net.Pipe works too", func(t *testing.T) {
		w := newWorld(t)
		pc, ec := net.Pipe()
		defer pc.Close()
		done := make(chan error, 1)
		go func() { done <- enclave.Serve(context.Background(), ec, w.config()) }()
		res, err := parent.Load(context.Background(), pc, w.cust, parent.Request{
			Region: "eu-west-1", Credentials: testCreds, GenesisValidatorsRoot: hoodiRoot, Pubkeys: w.pubkeys[:1], Signer: w.signer,
		}, nil)
		if err != nil || !res.OK || <-done != nil {
			t.Fatalf("got %v %+v", err, res)
		}
	})
}

// neverReader fails the test if read: nothing past a refused length
// prefix may be consumed.
type neverReader struct{ t *testing.T }

func (n neverReader) Read([]byte) (int, error) {
	n.t.Error("read past an oversized length prefix")
	return 0, io.EOF
}

func TestCredentialsRedact(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	req := &enclave.LoadRequest{Credentials: testCreds}
	log.Info("x", slog.Any("creds", testCreds), slog.Any("req", req))
	for _, s := range []string{testCreds.SecretAccessKey, testCreds.SessionToken, testCreds.AccessKeyID} {
		if strings.Contains(buf.String(), s) {
			t.Fatal("credentials logged")
		}
	}
	if s := fmtAll(testCreds); strings.Contains(s, testCreds.SecretAccessKey) {
		t.Fatal("credentials formatted")
	}
}
