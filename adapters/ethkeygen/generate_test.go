package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/internal/testenv"
	"github.com/ethkeygen/ethkeygen/store/dynamostore"
)

type generateOutput struct {
	RequestID   string `json:"request_id"`
	Created     int    `json:"created"`
	DepositData string `json:"deposit_data"`
	Validators  []struct {
		Slot   int    `json:"slot"`
		Pubkey string `json:"pubkey"`
	} `json:"validators"`
}

func generateJSON(t *testing.T, args ...string) generateOutput {
	t.Helper()
	r := runCLI(t, append([]string{"generate", "--json"}, args...)...)
	if r.code != 0 {
		t.Fatalf("generate exit %d: %s", r.code, r.stderr)
	}
	var out generateOutput
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	return out
}

// TestGenerateEmbedded runs the main job on the embedded default: generate,
// repeat (idempotent), list, export; the deposit file verifies.
func TestGenerateEmbedded(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("ETHKEYGEN_HOME", filepath.Join(dir, "home"))
	db := filepath.Join(dir, "ethkeygen.db")
	common := []string{"--chain", "hoodi", "--bls-withdrawal", "--db", db, "--out", dir, "--secret-format", "raw"}
	first := generateJSON(t, append([]string{"--count", "3", "--request-id", "run-1"}, common...)...)
	if first.Created != 3 || len(first.Validators) != 3 {
		t.Fatalf("%+v", first)
	}
	b, _ := os.ReadFile(first.DepositData)
	if _, errs := depositdata.VerifyFile(b, &depositdata.Hoodi); len(errs) != 0 {
		t.Fatal(errs)
	}
	st, _ := os.Stat(filepath.Join(dir, "home", "identity.txt"))
	if st == nil || st.Mode().Perm() != 0o600 {
		t.Fatal("identity file missing or not 0600")
	}
	again := generateJSON(t, append([]string{"--count", "3", "--request-id", "run-1"}, common...)...)
	if again.Created != 0 || again.Validators[2].Pubkey != first.Validators[2].Pubkey {
		t.Fatalf("repeat: %+v", again)
	}
	// The repeat hands out no deposit again: it re-writes the request's
	// export, the same file with the same bytes.
	if again.DepositData != first.DepositData {
		t.Fatalf("repeat wrote %s, the first run %s", again.DepositData, first.DepositData)
	}
	if b1, _ := os.ReadFile(again.DepositData); string(b1) != string(b) {
		t.Fatal("the repeat changed the deposit file")
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "deposit_data-*.json")); len(files) != 1 {
		t.Fatalf("deposit files after a repeat: %v", files)
	}
	if r := runCLI(t, append([]string{"generate", "--count", "4", "--request-id", "run-1"}, common...)...); r.code == 0 || !strings.Contains(r.stderr, "different parameters") {
		t.Fatalf("reused request id: %+v", r)
	}
	r := runCLI(t, "list", "--db", db, "--json")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 3 || !strings.Contains(r.stdout, `"status":"exported"`) {
		t.Fatalf("list: %+v", r)
	}
	for _, v := range first.Validators {
		if !strings.Contains(r.stdout, v.Pubkey) {
			t.Fatal("list misses a validator")
		}
	}
	// Nothing is left for a new export; the request's export re-writes the
	// same bytes, by request id or by export id, anywhere.
	if r := runCLI(t, "export-deposits", "--db", db, "--all", "--bls-withdrawal", "--out", filepath.Join(dir, "x")); r.code == 0 || !strings.Contains(r.stderr, "no deposit to hand out") {
		t.Fatalf("a second export of exported deposits: %+v", r)
	}
	for _, sel := range [][]string{{"--request-id", "run-1"}, {"--export-id", "req-run-1"}} {
		out := filepath.Join(dir, "again-"+sel[0][2:])
		r := runCLI(t, append([]string{"export-deposits", "--db", db, "--bls-withdrawal", "--out", out}, sel...)...)
		if r.code != 0 {
			t.Fatal(r.stderr)
		}
		b2, _ := os.ReadFile(filepath.Join(out, filepath.Base(first.DepositData)))
		if string(b2) != string(b) {
			t.Fatalf("re-export %v: not the same file", sel)
		}
	}
	// Stating another withdrawal target is refused, naming a pubkey.
	r = runCLI(t, "export-deposits", "--db", db, "--request-id", "run-1", "--withdrawal-address", "0x0f51bb10119727a7e5eA3538074fb341F56B09Ad", "--out", filepath.Join(dir, "y"))
	if r.code != 1 || !strings.Contains(r.stderr, "withdrawal credentials") {
		t.Fatalf("export stating another target: %+v", r)
	}
	r = runCLI(t, "list", "--db", db, "--exports")
	if r.code != 0 || !strings.Contains(r.stdout, "req-run-1\tsealed\thoodi\t3 deposits") {
		t.Fatalf("list --exports: %+v", r)
	}
}

func TestGenerateBadInput(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("ETHKEYGEN_HOME", filepath.Join(dir, "home"))
	db := filepath.Join(dir, "ethkeygen.db")
	for name, c := range map[string]struct {
		args    []string
		mention string
	}{
		"unknown chain":     {[]string{"--count", "1", "--chain", "goerli"}, "unknown network"},
		"bad checksum":      {[]string{"--count", "1", "--chain", "hoodi", "--withdrawal-address", "0x0F51bb10119727a7e5eA3538074fb341F56B09Ad"}, "EIP-55"},
		"amount too high":   {[]string{"--count", "1", "--chain", "hoodi", "--bls-withdrawal", "--amount-gwei", "33000000000"}, "amount"},
		"count 0":           {[]string{"--count", "0", "--chain", "hoodi", "--bls-withdrawal"}, "--count"},
		"count absurd":      {[]string{"--count", "1000000", "--chain", "hoodi", "--bls-withdrawal"}, "--count"},
		"bad format":        {[]string{"--count", "1", "--chain", "hoodi", "--bls-withdrawal", "--secret-format", "pem"}, "secret format"},
		"kpm too big":       {[]string{"--count", "1", "--chain", "hoodi", "--bls-withdrawal", "--keys-per-mnemonic", "99"}, "keys per mnemonic"},
		"bad recipient":     {[]string{"--count", "1", "--chain", "hoodi", "--bls-withdrawal", "--recipient", "age1nope"}, "recipient"},
		"store unavailable": {[]string{"--count", "1", "--chain", "hoodi", "--bls-withdrawal", "--db", filepath.Join(dir, "no", "such", "dir", "x.db")}, "store"},
	} {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			args := append([]string{"generate", "--db", db, "--out", out, "--secret-format", "raw"}, c.args...)
			r := runCLI(t, args...)
			if r.code == 0 || !strings.Contains(strings.SplitN(r.stderr, "\n", 2)[0]+r.stderr, c.mention) {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			if entries, _ := os.ReadDir(out); len(entries) != 0 {
				t.Fatalf("left files %v", entries)
			}
		})
	}
}

// TestGenerateOnAWSStandIns runs generate against local-kms and DynamoDB
// Local through the standard AWS environment (AWS_ENDPOINT_URL_*).
func TestGenerateOnAWSStandIns(t *testing.T) {
	kmsEP := testenv.KMSEndpoint(t)
	ddbEP := testenv.DynamoDBEndpoint(t)
	keyARN := testenv.NewKMSKey(t, testenv.AWSConfig(t, kmsEP))
	table := "cli-" + strings.ReplaceAll(t.Name(), "/", "-") + "-" + randomSuffix(t)
	if err := dynamostore.CreateTable(context.Background(), dynamodb.NewFromConfig(testenv.AWSConfig(t, ddbEP)), table); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ENDPOINT_URL_KMS", kmsEP)
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", ddbEP)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "eu-west-1")
	if err := dynamostore.CreateLedgerTable(context.Background(), dynamodb.NewFromConfig(testenv.AWSConfig(t, ddbEP)), table+"-ledger"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	t.Setenv("ETHKEYGEN_HOME", filepath.Join(dir, "home"))
	args := []string{"--count", "3", "--chain", "hoodi", "--bls-withdrawal", "--kms-key-id", keyARN, "--dynamodb-table", table,
		"--out", dir, "--secret-format", "raw", "--request-id", "aws-1"}
	first := generateJSON(t, args...)
	if first.Created != 3 {
		t.Fatalf("%+v", first)
	}
	if again := generateJSON(t, args...); again.Created != 0 || again.Validators[0].Pubkey != first.Validators[0].Pubkey {
		t.Fatalf("%+v", again)
	}
	r := runCLI(t, "list", "--dynamodb-table", table, "--json")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 3 {
		t.Fatalf("%+v", r)
	}
	// A missing KMS key: one clear line, non-zero exit, nothing stored.
	bad := []string{"--count", "1", "--chain", "hoodi", "--bls-withdrawal", "--kms-key-id", "arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-0000-0000-000000000000",
		"--dynamodb-table", table, "--out", dir, "--secret-format", "raw", "--request-id", "aws-missing-key"}
	// Another KMS key than the store's first one is refused by the pin...
	if r := runCLI(t, append([]string{"generate"}, bad...)...); r.code != 1 || !strings.Contains(r.stderr, "not the key this store was first used with") {
		t.Fatalf("another key: %+v", r)
	}
	// ...and, when the change is deliberate, a key that does not exist fails cleanly.
	if r := runCLI(t, append([]string{"generate", "--new-recipient"}, bad...)...); r.code == 0 || !strings.Contains(r.stderr, "NotFound") || strings.Count(r.stderr, "\n") > 2 {
		t.Fatalf("missing key: %+v", r)
	}
	r = runCLI(t, "list", "--dynamodb-table", table, "--request-id", "aws-missing-key")
	if strings.TrimSpace(r.stdout) != "" {
		t.Fatal("a failed run stored records")
	}
}
