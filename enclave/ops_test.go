//go:build !ethkeygen_fuzzonly

package enclave_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/enclave"
	"github.com/ethkeygen/ethkeygen/enclave/parent"
	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/internal/opscheck"
	"github.com/ethkeygen/ethkeygen/internal/opsfile"
	"github.com/ethkeygen/ethkeygen/internal/testenv"
	"github.com/ethkeygen/ethkeygen/ops"
	"github.com/ethkeygen/ethkeygen/provenance"
	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/store/dynamostore"
)

const opsAddress = "0x5B38Da6a701c568545dCfcB03FcB875f56beddC4"

// opsWorld is validators on the AWS stand-ins: sealed with local-kms,
// stored in DynamoDB Local (records and ledger), three with 0x00
// credentials and one with 0x01, all exported.
type opsWorld struct {
	cust     *custody.Custodian
	verifier provenance.Verifier
	kms      *kms.Client
	bls      []string // 0x00 credentials
	exec     string   // 0x01 credentials
	encLog   *syncBuffer
}

func newOpsWorld(t *testing.T) *opsWorld {
	t.Helper()
	ctx := context.Background()
	kmsCfg := testenv.AWSConfig(t, testenv.KMSEndpoint(t))
	ddb := dynamodb.NewFromConfig(testenv.AWSConfig(t, testenv.DynamoDBEndpoint(t)))
	key := testenv.NewKMSKey(t, kmsCfg)
	table := fmt.Sprintf("enclave-ops-%d", time.Now().UnixNano())
	if err := dynamostore.CreateTable(ctx, ddb, table); err != nil {
		t.Fatal(err)
	}
	if err := dynamostore.CreateLedgerTable(ctx, ddb, table+"-ledger"); err != nil {
		t.Fatal(err)
	}
	st, err := dynamostore.New(ddb, table)
	if err != nil {
		t.Fatal(err)
	}
	ledger, err := dynamostore.NewLedger(ddb, table+"-ledger")
	if err != nil {
		t.Fatal(err)
	}
	keys := t.TempDir()
	signer, _, err := provenance.LoadOrCreateLocalSigner(keys)
	if err != nil {
		t.Fatal(err)
	}
	w := &opsWorld{kms: kms.NewFromConfig(kmsCfg), encLog: &syncBuffer{}}
	if w.verifier, err = provenance.LoadLocalVerifier(keys); err != nil {
		t.Fatal(err)
	}
	if w.cust, err = custody.NewCustodian(st, ledger, w.verifier); err != nil {
		t.Fatal(err)
	}
	gen, err := custody.NewGenerator(st, envelope.NewKMSSealer(w.kms, key), signer, custody.WithInsecureKDFCost(t, 16))
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := depositdata.ParseAddress(opsAddress, false)
	for _, req := range []struct {
		r   custody.Request
		bls bool
	}{
		{custody.Request{ID: "ops-bls", Count: 3, Network: depositdata.Hoodi, KeysPerMnemonic: 2}, true},
		{custody.Request{ID: "ops-exec", Count: 1, Network: depositdata.Hoodi, Format: custody.FormatRaw, Withdrawal: custody.Withdrawal{Address: &addr}}, false},
	} {
		res, err := gen.Generate(ctx, req.r, nil)
		if err != nil {
			t.Fatal(err)
		}
		er := custody.ExportRequest{RequestID: req.r.ID, BLSWithdrawal: req.bls}
		if !req.bls {
			er.Withdrawal = custody.Withdrawal{Address: &addr}
		}
		if _, err := w.cust.Export(ctx, er); err != nil {
			t.Fatal(err)
		}
		for _, v := range res.Validators {
			if req.bls {
				w.bls = append(w.bls, v.Pubkey)
			} else {
				w.exec = v.Pubkey
			}
		}
	}
	return w
}

func (w *opsWorld) config(t *testing.T) enclave.Config {
	return enclave.Config{
		KeyDir: filepath.Join(t.TempDir(), "keys"), InterchangeFile: filepath.Join(t.TempDir(), "i.json"), Logger: debugLogger(w.encLog), Verifier: w.verifier,
		NewOpener: func(context.Context, string, enclave.Credentials) (envelope.Opener, error) {
			// local-kms has no Nitro Recipient: the plain KMS opener
			// stands for the attested one (the NSM stand-in is tested
			// on the load path).
			return envelope.NewKMSOpener(w.kms), nil
		},
	}
}

// exchange runs one sign exchange over a socket pair.
func (w *opsWorld) exchange(t *testing.T, exits bool, req parent.SignRequest) (*parent.Signed, error, error) {
	pc, ec := socketPair(t)
	var serveErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		serveErr = enclave.Serve(context.Background(), ec, w.config(t))
	}()
	req.Region, req.Credentials = "eu-west-1", testCreds
	var res *parent.Signed
	var err error
	if exits {
		res, err = parent.SignExits(context.Background(), pc, w.cust, req, nil)
	} else {
		res, err = parent.SignBLSChanges(context.Background(), pc, w.cust, req, nil)
	}
	pc.Close()
	<-done
	return res, err, serveErr
}

// TestSignOpsOnAWSStandIns: exits and BLS changes signed in the enclave
// for keys sealed with local-kms and kept in DynamoDB Local. The parent
// writes the files with the CLI's writer (encrypted exits for the
// ejector too); package ops and the Node checker verify them; the keys
// are exit-signed in the ledger; the enclave's answer and log hold no
// secret. Refused: a retired key, a BLS change for 0x01 credentials.
func TestSignOpsOnAWSStandIns(t *testing.T) {
	w := newOpsWorld(t)
	ctx := context.Background()
	n := depositdata.Hoodi
	var items []opscheck.Item

	// BLS changes first (the keys are still only exported).
	res, err, serveErr := w.exchange(t, false, parent.SignRequest{Pubkeys: w.bls[:2], ValidatorIndices: []uint64{10, 11}, ToExecutionAddress: opsAddress})
	if err != nil || serveErr != nil {
		t.Fatalf("BLS changes: %v / %v", err, serveErr)
	}
	file, err := opsfile.BLSChangeFile(res.BLSChanges, res.Creds, res.Network, false)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	path, err := opsfile.WriteBLSChangeFile(out, file, 1700000000)
	if err != nil {
		t.Fatal(err)
	}
	back, _ := os.ReadFile(path)
	cs, err := ops.VerifyBLSChangeFile(back, n)
	if err != nil || len(cs) != 2 || filepath.Base(path) != "bls_to_execution_change-1700000000.json" {
		t.Fatalf("BLS change file %s: %v", path, err)
	}
	for _, c := range cs {
		items = append(items, opscheck.BLSChange(t, c, n))
	}

	// Exits: the ledger marks them first; encrypted for the ejector.
	res, err, serveErr = w.exchange(t, true, parent.SignRequest{Pubkeys: w.bls, ValidatorIndices: []uint64{10, 11, 12}, Epoch: 7})
	if err != nil || serveErr != nil {
		t.Fatalf("exits: %v / %v", err, serveErr)
	}
	for _, pk := range w.bls {
		if _, ks, err := w.cust.Get(ctx, pk); err != nil || ks == nil || ks.State != store.StatusExitSigned {
			t.Fatalf("0x%s after its exit: %+v %v", pk, ks, err)
		}
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("ejector messages password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pw, err := opsfile.ReadPassword(pwFile)
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Destroy()
	files, err := opsfile.ExitFiles(res.Exits, res.Network, pw)
	if err != nil {
		t.Fatal(err)
	}
	written, err := opsfile.WriteExits(filepath.Join(out, "exits"), res.Exits, files, 1700000000, true)
	if err != nil || len(written) != 3 {
		t.Fatal(err)
	}
	for i, wr := range written {
		b, _ := os.ReadFile(wr.File)
		e, err := ops.DecryptExitFile(b, []byte("ejector messages password"))
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := hex.DecodeString(w.bls[i])
		if err := ops.VerifyExit(e, pub, n); err != nil || uint64(e.Message.ValidatorIndex) != uint64(10+i) || e.Message.Epoch != 7 {
			t.Fatalf("exit %d: %v %+v", i, err, e.Message)
		}
		if filepath.Base(wr.File) != fmt.Sprintf("signed_exit_transaction-%d-1700000000.json", 10+i) {
			t.Fatalf("exit file name %s", wr.File)
		}
		items = append(items, opscheck.Exit(t, e, pub, n), opscheck.EncryptedExit(b, "ejector messages password\n", pub, n))
	}
	for _, s := range []string{fmt.Sprint(res.Result), w.encLog.String()} {
		for _, secret := range []string{testCreds.SecretAccessKey, testCreds.SessionToken} {
			if strings.Contains(s, secret) {
				t.Fatal("a credential leaked into the answer or the log")
			}
		}
	}
	opscheck.RequireValid(t, items)

	// A BLS change for 0x01 credentials: the enclave refuses it and
	// signs nothing.
	res, err, serveErr = w.exchange(t, false, parent.SignRequest{Pubkeys: []string{w.bls[2], w.exec}, ValidatorIndices: []uint64{12, 13}, ToExecutionAddress: opsAddress})
	if !errors.Is(err, enclave.ErrRefused) || !errors.Is(serveErr, enclave.ErrRefused) || res != nil {
		t.Fatalf("0x01 BLS change: %v / %v", err, serveErr)
	}
	if !strings.Contains(w.encLog.String(), "not 0x00") {
		t.Fatal("the enclave did not say why it refused the 0x01 key")
	}

	// A retired key: custody refuses it on the parent before anything is
	// sent, and the enclave refuses a request naming it anyway.
	if _, err := w.cust.Retire(ctx, w.bls[0], "test"); err != nil {
		t.Fatal(err)
	}
	if _, err, _ := w.exchange(t, true, parent.SignRequest{Pubkeys: w.bls[:1], ValidatorIndices: []uint64{10}}); !errors.Is(err, custody.ErrState) {
		t.Fatalf("exit of a retired key on the parent: %v", err)
	}
	rec, _, err := w.cust.Get(ctx, w.bls[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, state := range []store.Status{store.StatusRetired, store.StatusExported, ""} {
		sig := rawSign(t, w.config(t), enclave.TypeSignExits, &enclave.SignRequest{Version: enclave.ProtocolVersion, Epoch: 1,
			Items: []enclave.SignItem{{Record: enclave.RecordOf(rec), State: state, ValidatorIndex: 10}}})
		if sig.OK || len(sig.Exits) != 0 || len(sig.Keys) != 1 || sig.Keys[0].Status != enclave.KeyRefused {
			t.Fatalf("enclave signed an exit for state %q: %+v", state, sig)
		}
	}
}

// rawSign sends req as typ straight to the enclave (a parent that skips
// custody) and returns its answer.
func rawSign(t *testing.T, cfg enclave.Config, typ string, req *enclave.SignRequest) *enclave.Signed {
	t.Helper()
	pc, ec := socketPair(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = enclave.Serve(context.Background(), ec, cfg)
	}()
	if err := enclave.WriteMessage(pc, &enclave.Message{Type: typ, Sign: req}); err != nil {
		t.Fatal(err)
	}
	m, err := enclave.ReadMessage(pc, 0)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if m.Signed == nil {
		return &enclave.Signed{Error: m.Result.Error}
	}
	return m.Signed
}

// TestSignRequestMalformed: sign messages of the wrong form are refused
// by ReadMessage (ErrProtocol) and answered with a result saying so.
func TestSignRequestMalformed(t *testing.T) {
	item := enclave.SignItem{Record: enclave.Record{Pubkey: strings.Repeat("ab", 48)}, ValidatorIndex: 1}
	for name, m := range map[string]*enclave.Message{
		"no items":             {Type: enclave.TypeSignExits, Sign: &enclave.SignRequest{Version: 1}},
		"exit with an address": {Type: enclave.TypeSignExits, Sign: &enclave.SignRequest{Version: 1, ToExecutionAddress: opsAddress, Items: []enclave.SignItem{item}}},
		"change without one":   {Type: enclave.TypeSignBLSChanges, Sign: &enclave.SignRequest{Version: 1, Items: []enclave.SignItem{item}}},
		"change with an epoch": {Type: enclave.TypeSignBLSChanges, Sign: &enclave.SignRequest{Version: 1, Epoch: 3, ToExecutionAddress: opsAddress, Items: []enclave.SignItem{item}}},
		"two payloads":         {Type: enclave.TypeSignExits, Sign: &enclave.SignRequest{Version: 1, Items: []enclave.SignItem{item}}, Load: &enclave.LoadRequest{}},
		"signed as a request":  {Type: enclave.TypeSigned, Sign: &enclave.SignRequest{Version: 1, Items: []enclave.SignItem{item}}},
	} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := enclave.WriteMessage(&buf, m); err != nil {
				t.Fatal(err)
			}
			if _, err := enclave.ReadMessage(&buf, 0); !errors.Is(err, enclave.ErrProtocol) {
				t.Fatalf("ReadMessage: %v, want ErrProtocol", err)
			}
		})
	}
	// Well formed, but the wrong protocol version: the enclave answers
	// with a refusal and signs nothing.
	w := newWorld(t)
	sig := rawSign(t, w.config(), enclave.TypeSignExits, &enclave.SignRequest{Version: 99, Items: []enclave.SignItem{item}})
	if sig.OK || !strings.Contains(sig.Error, "protocol version") {
		t.Fatalf("version 99: %+v", sig)
	}
}
