package deploy_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"

	"filippo.io/age"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/internal/testenv"
	"github.com/ethkeygen/ethkeygen/provenance"
	"github.com/ethkeygen/ethkeygen/store/dynamostore"
)

// recorder is a dynamostore.API in front of DynamoDB Local that records
// what the store sends: the IAM action of each call (each item of a
// TransactWriteItems is authorised as its own action), the partition keys,
// the attribute names written, ReturnValues and the index queried.
type recorder struct {
	next    dynamostore.API
	mu      sync.Mutex
	actions map[string]bool
	keys    map[string][]string // action -> leading keys
	attrs   map[string]bool     // attribute names written
	returns map[string]bool     // ReturnValues sent
	indexes map[string]bool
}

func pkOf(item map[string]types.AttributeValue) string {
	if v, ok := item[dynamostore.AttrPK].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return "?"
}

func (r *recorder) note(action string, item map[string]types.AttributeValue, write bool, rv types.ReturnValue) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.actions[action] = true
	r.keys[action] = append(r.keys[action], pkOf(item))
	if write {
		for k := range item {
			r.attrs[k] = true
		}
	}
	if rv != "" {
		r.returns[string(rv)] = true
	}
}

func (r *recorder) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	r.note("dynamodb:GetItem", in.Key, false, "")
	return r.next.GetItem(ctx, in, o...)
}

func (r *recorder) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	r.note("dynamodb:PutItem", in.Item, true, in.ReturnValues)
	return r.next.PutItem(ctx, in, o...)
}

func (r *recorder) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	r.note("dynamodb:UpdateItem", in.Key, false, in.ReturnValues)
	return r.next.UpdateItem(ctx, in, o...)
}

func (r *recorder) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, o ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	for _, it := range in.TransactItems {
		switch {
		case it.Put != nil:
			r.note("dynamodb:PutItem", it.Put.Item, true, "")
		case it.Update != nil:
			r.note("dynamodb:UpdateItem", it.Update.Key, false, "")
		case it.Delete != nil:
			r.note("dynamodb:DeleteItem", it.Delete.Key, false, "")
		case it.ConditionCheck != nil:
			r.note("dynamodb:ConditionCheckItem", it.ConditionCheck.Key, false, "")
		}
	}
	return r.next.TransactWriteItems(ctx, in, o...)
}

func (r *recorder) Query(ctx context.Context, in *dynamodb.QueryInput, o ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	r.mu.Lock()
	r.actions["dynamodb:Query"] = true
	if in.IndexName != nil {
		r.indexes[*in.IndexName] = true
	}
	r.mu.Unlock()
	return r.next.Query(ctx, in, o...)
}

func (r *recorder) Scan(ctx context.Context, in *dynamodb.ScanInput, o ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	r.mu.Lock()
	r.actions["dynamodb:Scan"] = true
	r.mu.Unlock()
	return r.next.Scan(ctx, in, o...)
}

var _ dynamostore.API = (*recorder)(nil)

// generatorUse runs the real generator (custody over dynamostore on
// DynamoDB Local, with a separate mnemonic sealer and a withdrawal address,
// so every optional attribute is written) through the recorder: a request,
// its repeat (which reads the stored slots back), and a request interrupted
// half way and completed.
func generatorUse(t *testing.T) *recorder {
	t.Helper()
	cfg := testenv.AWSConfig(t, testenv.DynamoDBEndpoint(t))
	client := dynamodb.NewFromConfig(cfg)
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	table := "deploy-lp-" + hex.EncodeToString(b)
	if err := dynamostore.CreateTable(t.Context(), client, table); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{next: client, actions: map[string]bool{}, keys: map[string][]string{}, attrs: map[string]bool{},
		returns: map[string]bool{}, indexes: map[string]bool{}}
	st, err := dynamostore.New(rec, table)
	if err != nil {
		t.Fatal(err)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	sealer := envelope.NewLocalSealer(id.Recipient())
	signer, _, err := provenance.LoadOrCreateLocalSigner(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	gen, err := custody.NewGenerator(st, sealer, signer, custody.WithMnemonicSealer(sealer), custody.WithInsecureKDFCost(t, 4))
	if err != nil {
		t.Fatal(err)
	}
	spec, err := custody.ParseSpec([]byte(`{"request_id":"lp","count":3,"chain":"hoodi","withdrawal_address":"0x0f51bb10119727a7e5eA3538074fb341F56B09Ad","keys_per_mnemonic":1}`))
	if err != nil {
		t.Fatal(err)
	}
	req, err := spec.Request()
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := gen.Generate(t.Context(), req, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Interrupted after the first validator: the repeat completes it.
	req.ID = "lp-interrupted"
	ctx, cancel := context.WithCancel(t.Context())
	_, _ = gen.Generate(ctx, req, func(done, _ int) {
		if done >= 1 {
			cancel()
		}
	})
	cancel()
	if _, err := gen.Generate(t.Context(), req, nil); err != nil {
		t.Fatal(err)
	}
	return rec
}

// dynamoStatements returns the generator role's statements that name a
// DynamoDB action.
func dynamoStatements(tpl template) []statement {
	stmts, _ := tpl.generatorStatements("GeneratorRole")
	return slices.DeleteFunc(stmts, func(s statement) bool {
		return !slices.ContainsFunc(s.actions(), func(a string) bool { return strings.HasPrefix(strings.ToLower(a), "dynamodb:") || a == "*" })
	})
}

// TestGeneratorDynamoDBLeastPrivilege: the generator role is allowed exactly
// the DynamoDB actions the generator's code sends (found by running it over
// a recording client, not from a list), each on the records table only:
// PutItem with dynamodb:LeadingKeys on the key prefixes it writes,
// dynamodb:Attributes on exactly the attribute names it writes and
// ReturnValues NONE; GetItem with the same LeadingKeys; Query on the
// by_request index only. No UpdateItem, no wildcard.
func TestGeneratorDynamoDBLeastPrivilege(t *testing.T) {
	used := generatorUse(t)
	tpl := loadTemplate(t)
	allowed := map[string]statement{}
	for _, s := range dynamoStatements(tpl) {
		if !s.allow() {
			continue
		}
		for _, a := range s.actions() {
			if strings.Contains(a, "*") {
				t.Errorf("%s: wildcard action %q", s.where, a)
			}
			if _, dup := allowed[a]; dup {
				t.Errorf("%s: %s allowed twice", s.where, a)
			}
			allowed[a] = s
		}
	}
	if got, want := slices.Sorted(maps.Keys(allowed)), slices.Sorted(maps.Keys(used.actions)); !slices.Equal(got, want) {
		t.Fatalf("generator role allows %v; its code uses %v", got, want)
	}
	if _, ok := allowed["dynamodb:UpdateItem"]; ok {
		t.Error("generator role allows dynamodb:UpdateItem")
	}
	for a, s := range allowed {
		res := asSlice(s.raw["Resource"])
		if a == "dynamodb:Query" {
			want := []string{"${Table.Arn}/index/" + dynamostore.IndexByRequest}
			if got := collectStrings(res); !slices.Equal(got, want) || !slices.Equal(slices.Sorted(maps.Keys(used.indexes)), []string{dynamostore.IndexByRequest}) {
				t.Errorf("%s: Query on %v (code queries %v), want %v", s.where, got, slices.Collect(maps.Keys(used.indexes)), want)
			}
			continue
		}
		if len(res) != 1 || !refersTo(res[0], "Table") {
			t.Errorf("%s: %s on %v, want the records table only", s.where, a, res)
		}
		c := s.condition()
		patterns := asStrings(asMap(c["ForAllValues:StringLike"])["dynamodb:LeadingKeys"])
		if len(patterns) == 0 {
			t.Errorf("%s: %s has no dynamodb:LeadingKeys condition", s.where, a)
		}
		for _, k := range used.keys[a] {
			if !slices.ContainsFunc(patterns, func(p string) bool { ok, _ := path.Match(p, k); return ok }) {
				t.Errorf("%s: %s of key %q is not allowed by LeadingKeys %v", s.where, a, k, patterns)
			}
		}
		// Each pattern matches a key the code uses: for PutItem one it
		// writes; for GetItem any key it uses (some reads happen only on
		// conflicts: Get of a record after a lost race, of a request when
		// the endpoint returns no item with the condition failure).
		var all []string
		for _, ks := range used.keys {
			all = append(all, ks...)
		}
		seen := used.keys[a]
		if a == "dynamodb:GetItem" {
			seen = all
		}
		for _, p := range patterns {
			if !slices.ContainsFunc(seen, func(k string) bool { ok, _ := path.Match(p, k); return ok }) {
				t.Errorf("%s: LeadingKeys pattern %q matches no key the code uses", s.where, p)
			}
		}
		if a != "dynamodb:PutItem" {
			continue
		}
		attrs := asStrings(asMap(c["ForAllValues:StringEquals"])["dynamodb:Attributes"])
		if got, want := slices.Sorted(slices.Values(attrs)), slices.Sorted(maps.Keys(used.attrs)); !slices.Equal(got, want) {
			t.Errorf("%s: dynamodb:Attributes %v; the code writes %v", s.where, got, want)
		}
		if rv := asMap(c["StringEqualsIfExists"])["dynamodb:ReturnValues"]; rv != "NONE" || len(used.returns) != 0 {
			t.Errorf("%s: dynamodb:ReturnValues %v (code sends %v), want NONE", s.where, rv, used.returns)
		}
	}
}

// TestLedgerTable: the ledger of CONTRACT.md is its own table (pk S only,
// on demand, PITR, SSE, retained, deletion-protected); the generator role
// has no Allow on it and an explicit Deny of dynamodb:*, and the table's
// resource policy allows the enclave/signer role exactly GetItem, PutItem,
// UpdateItem and ConditionCheckItem (TransactWriteItems is authorised per
// item) and denies the generator role.
func TestLedgerTable(t *testing.T) {
	tpl := loadTemplate(t)
	const id = "LedgerTable"
	r := tpl.resource(id)
	if r["Type"] != "AWS::DynamoDB::Table" || r["DeletionPolicy"] != "Retain" || r["UpdateReplacePolicy"] != "Retain" {
		t.Fatalf("%s: %v", id, r)
	}
	p := tpl.props(id)
	if fmt.Sprint(p["AttributeDefinitions"]) != "[map[AttributeName:pk AttributeType:S]]" ||
		fmt.Sprint(p["KeySchema"]) != "[map[AttributeName:pk KeyType:HASH]]" ||
		p["BillingMode"] != "PAY_PER_REQUEST" || p["DeletionProtectionEnabled"] != true ||
		asMap(p["PointInTimeRecoverySpecification"])["PointInTimeRecoveryEnabled"] != true ||
		asMap(p["SSESpecification"])["SSEEnabled"] != true || p["GlobalSecondaryIndexes"] != nil {
		t.Errorf("%s properties: %v", id, p)
	}
	sawDeny := false
	for _, s := range dynamoStatements(tpl) {
		touches := slices.ContainsFunc(asSlice(s.raw["Resource"]), func(r any) bool {
			return refersTo(r, id) || slices.ContainsFunc(collectStrings(r), func(x string) bool { return strings.Contains(x, id) })
		})
		if s.allow() && (touches || slices.Contains(collectStrings(s.raw["Resource"]), "*")) {
			t.Errorf("%s: the generator role is allowed %v on the ledger", s.where, s.actions())
		}
		if !s.allow() && touches && slices.Contains(s.actions(), "dynamodb:*") {
			sawDeny = true
		}
	}
	if !sawDeny {
		t.Error("the generator role has no Deny dynamodb:* on the ledger")
	}
	var signer, denyGen bool
	for _, s := range statements(id+" resource policy", asMap(p["ResourcePolicy"])["PolicyDocument"]) {
		prins := s.principals()
		switch {
		case s.allow():
			acts := slices.Sorted(slices.Values(s.actions()))
			want := []string{"dynamodb:ConditionCheckItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}
			if len(prins) != 1 || !refersTo(prins[0], "EnclaveRoleArn") || !slices.Equal(acts, want) {
				t.Errorf("%s: allows %v to %v; want only %v to EnclaveRoleArn", s.where, acts, prins, want)
			}
			signer = true
		case len(prins) == 1 && refersTo(prins[0], "GeneratorRole") && slices.Contains(s.actions(), "dynamodb:*"):
			denyGen = true
		}
	}
	if !signer || !denyGen {
		t.Errorf("ledger resource policy: signer allowed %v, generator denied %v", signer, denyGen)
	}
}

// reservedActions are the actions that change what the function runs with
// without touching its signed code.
var reservedActions = []string{
	"lambda:DeleteFunctionCodeSigningConfig", "lambda:PutFunctionCodeSigningConfig",
	"lambda:UpdateCodeSigningConfig", "lambda:UpdateFunctionConfiguration",
}

// TestReleaseManagerGuard: the template's guard policy denies the reserved
// actions on the stack's functions and code signing config to every
// principal but ReleaseManagerRoleArn, and the README's SCP denies the same
// actions with the same exception.
func TestReleaseManagerGuard(t *testing.T) {
	tpl := loadTemplate(t)
	stmts := statements("ReleaseManagerGuardPolicy", tpl.props("ReleaseManagerGuardPolicy")["PolicyDocument"])
	if len(stmts) != 1 || stmts[0].allow() {
		t.Fatalf("guard policy: want one Deny, have %v", stmts)
	}
	s := stmts[0]
	if got := slices.Sorted(slices.Values(s.actions())); !slices.Equal(got, reservedActions) {
		t.Errorf("guard denies %v, want %v", got, reservedActions)
	}
	if !refersTo(asMap(s.condition()["ArnNotEquals"])["aws:PrincipalArn"], "ReleaseManagerRoleArn") {
		t.Errorf("guard exception: %v", s.condition())
	}
	res := asSlice(s.raw["Resource"])
	if len(res) != 2 || !refersTo(res[1], "CodeSigningConfig") || !strings.HasSuffix(fmt.Sprint(collectStrings(res[0])), ":function:${AWS::StackName}-*]") {
		t.Errorf("guard resources %v", res)
	}
	scp := readmeSCP(t)
	for _, a := range reservedActions {
		if !strings.Contains(scp, `"`+a+`"`) {
			t.Errorf("README SCP does not deny %s", a)
		}
	}
	if !strings.Contains(scp, `"Effect": "Deny"`) || !strings.Contains(scp, `"aws:PrincipalArn"`) {
		t.Errorf("README SCP is not a Deny with a release-manager exception:\n%s", scp)
	}
}

// readmeSCP returns the JSON block after "<!-- release-manager-scp -->" in
// README.md.
func readmeSCP(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), "<!-- release-manager-scp -->")
	if !ok {
		t.Fatal("README.md has no <!-- release-manager-scp --> block")
	}
	_, after, _ = strings.Cut(after, "```json\n")
	block, _, ok := strings.Cut(after, "```")
	if !ok {
		t.Fatal("README.md: the SCP block is not closed")
	}
	var v any
	if err := json.Unmarshal([]byte(block), &v); err != nil {
		t.Fatalf("README.md SCP is not JSON: %v", err)
	}
	return block
}
