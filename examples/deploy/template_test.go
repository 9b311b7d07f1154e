package deploy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/ethkeygen/ethkeygen/custody"
	"os"
	"os/exec"
	"path"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"gopkg.in/yaml.v3"

	"github.com/ethkeygen/ethkeygen/store/dynamostore"
)

const templateFile = "template.yaml"

// template is a CloudFormation template read as plain data. It is written in
// the long form of the intrinsic functions ({Ref: X}, {Fn::GetAtt: [R, A]}),
// so a plain YAML parser reads it; loadTemplate refuses short-form tags.
type template map[string]any

func loadTemplate(t *testing.T) template {
	t.Helper()
	b, err := os.ReadFile(templateFile)
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := parseTemplate(b)
	if err != nil {
		t.Fatal(err)
	}
	return tpl
}

func parseTemplate(b []byte) (template, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, err
	}
	var bad []string
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
			bad = append(bad, fmt.Sprintf("line %d: %s", n.Line, n.Tag))
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&root)
	if len(bad) > 0 {
		return nil, fmt.Errorf("short-form intrinsic tags (write Ref/Fn::GetAtt/Fn::Sub in long form): %s", strings.Join(bad, ", "))
	}
	var m map[string]any // not template: yaml.v3 would give nested maps that type too
	if err := root.Decode(&m); err != nil {
		return nil, err
	}
	return template(m), nil
}

func (tpl template) resources() map[string]any { return asMap(tpl["Resources"]) }

func (tpl template) resource(name string) map[string]any { return asMap(tpl.resources()[name]) }

func (tpl template) props(name string) map[string]any { return asMap(tpl.resource(name)["Properties"]) }

// ofType returns the logical ids of the resources of type typ, sorted.
func (tpl template) ofType(typ string) []string {
	var ids []string
	for id, r := range tpl.resources() {
		if asMap(r)["Type"] == typ {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func asSlice(v any) []any {
	switch v := v.(type) {
	case nil:
		return nil
	case []any:
		return v
	default:
		return []any{v}
	}
}

func asStrings(v any) []string {
	var out []string
	for _, x := range asSlice(v) {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

func ref(name string) map[string]any { return map[string]any{"Ref": name} }

func getAtt(res, attr string) map[string]any {
	return map[string]any{"Fn::GetAtt": []any{res, attr}}
}

// refersTo reports whether v is {Ref: id} or {Fn::GetAtt: [id, ...]}.
func refersTo(v any, id string) bool {
	m := asMap(v)
	if m == nil {
		return false
	}
	if r, ok := m["Ref"]; ok {
		return r == id
	}
	if g := asSlice(m["Fn::GetAtt"]); len(g) > 0 {
		return g[0] == id
	}
	return false
}

// statement is one IAM or key-policy statement.
type statement struct {
	where string
	raw   map[string]any
}

func (s statement) allow() bool       { return s.raw["Effect"] == "Allow" }
func (s statement) actions() []string { return asStrings(s.raw["Action"]) }
func (s statement) condition() map[string]any {
	return asMap(s.raw["Condition"])
}

// principals returns the statement's principals: "*" for a bare "*", else
// the values of Principal.AWS / Principal.Service (strings or intrinsics).
func (s statement) principals() []any {
	p := s.raw["Principal"]
	if p == "*" {
		return []any{"*"}
	}
	var out []any
	for _, k := range []string{"AWS", "Service", "Federated", "CanonicalUser"} {
		out = append(out, asSlice(asMap(p)[k])...)
	}
	return out
}

func statements(where string, doc any) []statement {
	var out []statement
	for i, s := range asSlice(asMap(doc)["Statement"]) {
		out = append(out, statement{where: fmt.Sprintf("%s statement %d (%v)", where, i, asMap(s)["Sid"]), raw: asMap(s)})
	}
	return out
}

// grants reports whether the action pattern (IAM wildcards * and ?,
// case-insensitive) covers the concrete action.
func grants(pattern, action string) bool {
	ok, err := path.Match(strings.ToLower(pattern), strings.ToLower(action))
	return err == nil && ok
}

func grantsAny(patterns []string, action string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return grants(p, action) })
}

// Actions that use the key's secrets: nobody but the enclave may decrypt,
// nobody may re-encrypt or create grants (a grant is a way around the
// policy), and administrators may do none of the cryptographic operations.
var (
	decryptActions = []string{"kms:Decrypt"}
	neverActions   = []string{"kms:CreateGrant", "kms:ReEncryptFrom", "kms:ReEncryptTo"}
	cryptoActions  = []string{
		"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext",
		"kms:GenerateDataKeyPair", "kms:GenerateDataKeyPairWithoutPlaintext", "kms:ReEncryptFrom", "kms:ReEncryptTo",
		"kms:CreateGrant", "kms:GenerateMac", "kms:Sign",
	}
)

// generatorStatements returns every statement of an identity policy attached
// to the generator role: inline, separate RolePolicy/Policy resources.
func (tpl template) generatorStatements(role string) ([]statement, []error) {
	var out []statement
	var errs []error
	for _, p := range asSlice(tpl.props(role)["Policies"]) {
		out = append(out, statements(fmt.Sprintf("%s policy %v", role, asMap(p)["PolicyName"]), asMap(p)["PolicyDocument"])...)
	}
	for _, typ := range []string{"AWS::IAM::RolePolicy", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"} {
		for _, id := range tpl.ofType(typ) {
			p := tpl.props(id)
			attached := refersTo(p["RoleName"], role) || slices.ContainsFunc(asSlice(p["Roles"]), func(r any) bool { return refersTo(r, role) })
			if attached {
				out = append(out, statements(id, p["PolicyDocument"])...)
			}
		}
	}
	// Managed policies from AWS: only the VPC access policy, which has no KMS.
	for _, arn := range collectStrings(tpl.props(role)["ManagedPolicyArns"]) {
		if !strings.HasSuffix(arn, ":iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole") {
			errs = append(errs, fmt.Errorf("%s: unexpected managed policy %q", role, arn))
		}
	}
	return out, errs
}

// collectStrings returns every string leaf under v (for ARNs inside Fn::If
// and Fn::Sub).
func collectStrings(v any) []string {
	var out []string
	switch v := v.(type) {
	case string:
		out = append(out, v)
	case []any:
		for _, x := range v {
			out = append(out, collectStrings(x)...)
		}
	case map[string]any:
		for k, x := range v {
			switch k {
			case "Ref": // a parameter or resource name, not a value
			case "Fn::If": // [condition name, value if true, value if false]
				if branches := asSlice(x); len(branches) == 3 {
					out = append(out, collectStrings(branches[1:])...)
				}
			default:
				out = append(out, collectStrings(x)...)
			}
		}
	}
	return out
}

func hasContextCondition(c map[string]any) error {
	se := asMap(c["StringEquals"])
	if se["kms:EncryptionContext:purpose"] != "eth-validator-secret" || se["kms:EncryptionContext:format"] != "1" {
		return fmt.Errorf("no StringEquals on kms:EncryptionContext:purpose=eth-validator-secret and format=1: %v", se)
	}
	keys := asStrings(asMap(c["ForAllValues:StringEquals"])["kms:EncryptionContextKeys"])
	slices.Sort(keys)
	// The keys custody binds each secret with, and the envelope's format:
	// taken from the code, so the template cannot drift from it.
	want := custody.EncryptionContextKeys()
	if !slices.Equal(keys, want) {
		return fmt.Errorf("ForAllValues:StringEquals kms:EncryptionContextKeys = %v, want %v", keys, want)
	}
	return nil
}

// checkGenerator holds the generator role: KMS only GenerateDataKey on the
// key, under the encryption-context condition; never decrypt, re-encrypt,
// grants or wildcards; DynamoDB without DeleteItem.
func checkGenerator(tpl template) []error {
	fns := tpl.ofType("AWS::Lambda::Function")
	if len(fns) != 1 {
		return []error{fmt.Errorf("want one AWS::Lambda::Function, have %v", fns)}
	}
	roleRef := tpl.props(fns[0])["Role"]
	g := asSlice(asMap(roleRef)["Fn::GetAtt"])
	if len(g) != 2 {
		return []error{fmt.Errorf("function Role is not Fn::GetAtt of a role in the template: %v", roleRef)}
	}
	role := fmt.Sprint(g[0])
	stmts, errs := tpl.generatorStatements(role)
	sawSeal := false
	for _, s := range stmts {
		if !s.allow() {
			continue
		}
		acts := s.actions()
		for _, a := range append(append([]string{}, decryptActions...), neverActions...) {
			if grantsAny(acts, a) {
				errs = append(errs, fmt.Errorf("%s: generator role is allowed %s (actions %v)", s.where, a, acts))
			}
		}
		if grantsAny(acts, "dynamodb:DeleteItem") {
			errs = append(errs, fmt.Errorf("%s: generator role is allowed dynamodb:DeleteItem", s.where))
		}
		for _, a := range acts {
			if (a == "kms:Sign" || a == "kms:GetPublicKey") && len(asSlice(s.raw["Resource"])) == 1 && refersTo(asSlice(s.raw["Resource"])[0], "RecordSigningKey") {
				continue // the record authenticator (TestRecordSigningKey)
			}
			if strings.HasPrefix(strings.ToLower(a), "kms:") || a == "*" {
				if a != "kms:GenerateDataKey" {
					errs = append(errs, fmt.Errorf("%s: generator role has KMS action %q; only kms:GenerateDataKey is allowed", s.where, a))
					continue
				}
				sawSeal = true
				if err := hasContextCondition(s.condition()); err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", s.where, err))
				}
				if !slices.ContainsFunc(asSlice(s.raw["Resource"]), func(r any) bool { return refersTo(r, "DataKey") }) || len(asSlice(s.raw["Resource"])) != 1 {
					errs = append(errs, fmt.Errorf("%s: kms:GenerateDataKey must be on the DataKey only, is on %v", s.where, s.raw["Resource"]))
				}
			}
		}
	}
	if !sawSeal {
		errs = append(errs, fmt.Errorf("%s: no kms:GenerateDataKey statement", role))
	}
	return errs
}

// checkKeyPolicy holds the key policy: Decrypt only to the enclave role
// under the attestation condition; nobody gets kms:*, grants or
// re-encryption; administrators no cryptographic operation; no account root.
func checkKeyPolicy(tpl template) []error {
	keys := tpl.ofType("AWS::KMS::Key")
	if len(keys) != 2 || !slices.Contains(keys, "DataKey") || !slices.Contains(keys, "RecordSigningKey") {
		return []error{fmt.Errorf("want two AWS::KMS::Key (DataKey, RecordSigningKey), have %v", keys)}
	}
	var errs []error
	p := tpl.props("DataKey")
	if p["EnableKeyRotation"] != true {
		errs = append(errs, errors.New("key rotation is not enabled"))
	}
	if ks, ok := p["KeySpec"]; ok && ks != "SYMMETRIC_DEFAULT" {
		errs = append(errs, fmt.Errorf("KeySpec %v, want SYMMETRIC_DEFAULT", ks))
	}
	sawDecrypt, sawSeal, sawAdmin := false, false, false
	for _, s := range statements(keys[0]+" key policy", p["KeyPolicy"]) {
		if !s.allow() {
			continue
		}
		acts := s.actions()
		prins := s.principals()
		for _, pr := range prins {
			str, isStr := pr.(string)
			if isStr && (str == "*" || strings.HasSuffix(str, ":root") || !strings.HasPrefix(str, "arn:")) {
				errs = append(errs, fmt.Errorf("%s: allows principal %q (the account root, everyone, or a service)", s.where, str))
			}
			for _, sub := range collectStrings(pr) {
				if strings.Contains(sub, ":root") {
					errs = append(errs, fmt.Errorf("%s: allows the account root (%q)", s.where, sub))
				}
			}
		}
		for _, a := range acts {
			if a == "*" || strings.EqualFold(a, "kms:*") {
				errs = append(errs, fmt.Errorf("%s: grants %q", s.where, a))
			}
		}
		for _, a := range neverActions {
			if grantsAny(acts, a) {
				errs = append(errs, fmt.Errorf("%s: grants %s", s.where, a))
			}
		}
		onlyIs := func(id string) bool { return len(prins) == 1 && refersTo(prins[0], id) }
		switch {
		case grantsAny(acts, "kms:Decrypt"):
			sawDecrypt = true
			if !onlyIs("EnclaveRoleArn") {
				errs = append(errs, fmt.Errorf("%s: kms:Decrypt to %v; only the enclave role (Ref EnclaveRoleArn) may decrypt", s.where, prins))
			}
			if len(acts) != 1 {
				errs = append(errs, fmt.Errorf("%s: the decrypt statement allows more than kms:Decrypt: %v", s.where, acts))
			}
			c := s.condition()
			img := asMap(c["StringEqualsIgnoreCase"])["kms:RecipientAttestation:ImageSha384"]
			if img == nil {
				img = asMap(c["StringEquals"])["kms:RecipientAttestation:ImageSha384"]
			}
			if !refersTo(img, "EnclaveImageSha384") {
				errs = append(errs, fmt.Errorf("%s: kms:Decrypt without a kms:RecipientAttestation:ImageSha384 = Ref EnclaveImageSha384 condition", s.where))
			}
		case onlyIs("GeneratorRole"):
			sawSeal = true
			if !slices.Equal(acts, []string{"kms:GenerateDataKey"}) {
				errs = append(errs, fmt.Errorf("%s: generator allowed %v, want only kms:GenerateDataKey", s.where, acts))
			}
			if err := hasContextCondition(s.condition()); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", s.where, err))
			}
		case onlyIs("KeyAdminRoleArn"):
			sawAdmin = true
			for _, a := range cryptoActions {
				if grantsAny(acts, a) {
					errs = append(errs, fmt.Errorf("%s: administrators allowed cryptographic operation %s", s.where, a))
				}
			}
		default:
			errs = append(errs, fmt.Errorf("%s: unexpected principals %v in an Allow", s.where, prins))
		}
	}
	if !sawDecrypt || !sawSeal || !sawAdmin {
		errs = append(errs, fmt.Errorf("key policy lacks a statement: decrypt=%v seal=%v admin=%v", sawDecrypt, sawSeal, sawAdmin))
	}
	return errs
}

func checkRetain(tpl template) []error {
	var errs []error
	ids := append(tpl.ofType("AWS::KMS::Key"), tpl.ofType("AWS::DynamoDB::Table")...)
	if len(ids) != 4 {
		errs = append(errs, fmt.Errorf("want two keys (data, record signing) and two tables (records, ledger), have %v", ids))
	}
	for _, id := range ids {
		r := tpl.resource(id)
		if r["DeletionPolicy"] != "Retain" || r["UpdateReplacePolicy"] != "Retain" {
			errs = append(errs, fmt.Errorf("%s: DeletionPolicy %v, UpdateReplacePolicy %v, want Retain for both", id, r["DeletionPolicy"], r["UpdateReplacePolicy"]))
		}
	}
	return errs
}

func checkCodeSigning(tpl template) []error {
	var errs []error
	for _, fn := range tpl.ofType("AWS::Lambda::Function") {
		p := tpl.props(fn)
		if p["Runtime"] != "provided.al2023" || p["Handler"] != "bootstrap" {
			errs = append(errs, fmt.Errorf("%s: runtime %v handler %v, want provided.al2023 / bootstrap", fn, p["Runtime"], p["Handler"]))
		}
		csc := asSlice(asMap(p["CodeSigningConfigArn"])["Fn::GetAtt"])
		if len(csc) != 2 || tpl.resource(fmt.Sprint(csc[0]))["Type"] != "AWS::Lambda::CodeSigningConfig" {
			errs = append(errs, fmt.Errorf("%s: CodeSigningConfigArn %v is not a code signing config of this template", fn, p["CodeSigningConfigArn"]))
			continue
		}
		cp := tpl.props(fmt.Sprint(csc[0]))
		if got := asMap(cp["CodeSigningPolicies"])["UntrustedArtifactOnDeployment"]; got != "Enforce" {
			errs = append(errs, fmt.Errorf("%v: UntrustedArtifactOnDeployment %v, want Enforce", csc[0], got))
		}
		pubs := asSlice(asMap(cp["AllowedPublishers"])["SigningProfileVersionArns"])
		if len(pubs) == 0 {
			errs = append(errs, fmt.Errorf("%v: no allowed publishers", csc[0]))
		}
		for _, pub := range pubs {
			g := asSlice(asMap(pub)["Fn::GetAtt"])
			if len(g) != 2 || g[1] != "ProfileVersionArn" || tpl.resource(fmt.Sprint(g[0]))["Type"] != "AWS::Signer::SigningProfile" {
				errs = append(errs, fmt.Errorf("%v: allowed publisher %v is not a signing profile of this template", csc[0], pub))
				continue
			}
			if pid := tpl.props(fmt.Sprint(g[0]))["PlatformId"]; pid != "AWSLambda-SHA384-ECDSA" {
				errs = append(errs, fmt.Errorf("%v: PlatformId %v, want AWSLambda-SHA384-ECDSA", g[0], pid))
			}
		}
	}
	return errs
}

// errsOf is a check as a test: it fails with every error the check found.
func errsOf(t *testing.T, errs []error) {
	t.Helper()
	for _, err := range errs {
		t.Error(err)
	}
}

func TestGeneratorRoleCannotDecrypt(t *testing.T) { errsOf(t, checkGenerator(loadTemplate(t))) }

func TestKeyPolicyDecryptOnlyForAttestedEnclave(t *testing.T) {
	errsOf(t, checkKeyPolicy(loadTemplate(t)))
}

func TestKeyAndTableAreRetained(t *testing.T) { errsOf(t, checkRetain(loadTemplate(t))) }

func TestCodeSigningEnforced(t *testing.T) { errsOf(t, checkCodeSigning(loadTemplate(t))) }

// TestChecksCatchViolations edits a copy of the template in the ways the
// checks exist to stop, and asserts each edit is caught: a check that cannot
// fail proves nothing.
func TestChecksCatchViolations(t *testing.T) {
	keyStmts := func(tpl template) []any { return asSlice(asMap(tpl.props("DataKey")["KeyPolicy"])["Statement"]) }
	addKeyStmt := func(tpl template, s map[string]any) {
		kp := asMap(tpl.props("DataKey")["KeyPolicy"])
		kp["Statement"] = append(keyStmts(tpl), s)
	}
	sealStmt := func(tpl template) map[string]any {
		return asMap(asSlice(asMap(tpl.props("GeneratorSealPolicy")["PolicyDocument"])["Statement"])[0])
	}
	cases := []struct {
		name  string
		check func(template) []error
		edit  func(template)
	}{
		{"generator gets kms:Decrypt", checkGenerator, func(tpl template) {
			sealStmt(tpl)["Action"] = []any{"kms:GenerateDataKey", "kms:Decrypt"}
		}},
		{"generator gets kms:*", checkGenerator, func(tpl template) { sealStmt(tpl)["Action"] = "kms:*" }},
		{"generator gets kms:ReEncrypt*", checkGenerator, func(tpl template) {
			p := asSlice(tpl.props("GeneratorRole")["Policies"])
			doc := asMap(asMap(p[0])["PolicyDocument"])
			doc["Statement"] = append(asSlice(doc["Statement"]), map[string]any{"Effect": "Allow", "Action": "kms:ReEncrypt*", "Resource": "*"})
		}},
		{"generator seals without context condition", checkGenerator, func(tpl template) { delete(sealStmt(tpl), "Condition") }},
		{"generator may delete items", checkGenerator, func(tpl template) {
			p := asSlice(tpl.props("GeneratorRole")["Policies"])
			for _, pol := range p {
				for _, s := range asSlice(asMap(asMap(pol)["PolicyDocument"])["Statement"]) {
					asMap(s)["Action"] = append(asSlice(asMap(s)["Action"]), "dynamodb:*")
				}
			}
		}},
		{"root gets kms:*", checkKeyPolicy, func(tpl template) {
			addKeyStmt(tpl, map[string]any{"Effect": "Allow", "Principal": map[string]any{"AWS": map[string]any{"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}, "Action": "kms:*", "Resource": "*"})
		}},
		{"admin gets kms:Create*", checkKeyPolicy, func(tpl template) {
			for _, s := range keyStmts(tpl) {
				if refersTo(asMap(asMap(s)["Principal"])["AWS"], "KeyAdminRoleArn") {
					asMap(s)["Action"] = append(asSlice(asMap(s)["Action"]), "kms:Create*")
				}
			}
		}},
		{"admin gets kms:Decrypt", checkKeyPolicy, func(tpl template) {
			addKeyStmt(tpl, map[string]any{"Effect": "Allow", "Principal": map[string]any{"AWS": ref("KeyAdminRoleArn")}, "Action": "kms:Decrypt", "Resource": "*"})
		}},
		{"enclave decrypt without attestation", checkKeyPolicy, func(tpl template) {
			for _, s := range keyStmts(tpl) {
				if asMap(s)["Effect"] == "Allow" && slices.Contains(asStrings(asMap(s)["Action"]), "kms:Decrypt") {
					delete(asMap(asMap(s)["Condition"]), "StringEqualsIgnoreCase")
				}
			}
		}},
		{"generator gets decrypt in key policy", checkKeyPolicy, func(tpl template) {
			addKeyStmt(tpl, map[string]any{"Effect": "Allow", "Principal": map[string]any{"AWS": getAtt("GeneratorRole", "Arn")}, "Action": []any{"kms:Decrypt"}, "Resource": "*"})
		}},
		{"key not retained", checkRetain, func(tpl template) { tpl.resource("DataKey")["DeletionPolicy"] = "Delete" }},
		{"table replaced on update", checkRetain, func(tpl template) { delete(tpl.resource("Table"), "UpdateReplacePolicy") }},
		{"code signing warns", checkCodeSigning, func(tpl template) {
			asMap(tpl.props("CodeSigningConfig")["CodeSigningPolicies"])["UntrustedArtifactOnDeployment"] = "Warn"
		}},
		{"another signing platform", checkCodeSigning, func(tpl template) { tpl.props("SigningProfile")["PlatformId"] = "AWSIoTDeviceManagement-SHA256-ECDSA" }},
		{"function without code signing", checkCodeSigning, func(tpl template) { delete(tpl.props("GeneratorFunction"), "CodeSigningConfigArn") }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tpl := loadTemplate(t)
			if errs := c.check(tpl); len(errs) != 0 {
				t.Fatalf("the unedited template fails: %v", errs)
			}
			c.edit(tpl)
			if errs := c.check(tpl); len(errs) == 0 {
				t.Error("edit not caught")
			}
		})
	}
}

func TestTemplateRejectsShortFormTags(t *testing.T) {
	if _, err := parseTemplate([]byte("Resources:\n  X:\n    Value: !Ref Y\n")); err == nil {
		t.Fatal("short-form !Ref accepted")
	}
}

func TestFunctionEnvironment(t *testing.T) {
	tpl := loadTemplate(t)
	env := asMap(asMap(tpl.props("GeneratorFunction")["Environment"])["Variables"])
	want := map[string]any{
		"ETHKEYGEN_KMS_KEY_ID":                   getAtt("DataKey", "Arn"),
		"ETHKEYGEN_TABLE":                        ref("Table"),
		"ETHKEYGEN_ALLOWED_CHAINS":               ref("AllowedChains"),
		"ETHKEYGEN_MAX_COUNT":                    ref("MaxCount"),
		"ETHKEYGEN_ALLOWED_WITHDRAWAL_ADDRESSES": ref("AllowedWithdrawalAddresses"),
		"ETHKEYGEN_SIGNING_KEY_ID":               getAtt("RecordSigningKey", "Arn"),
	}
	if !reflect.DeepEqual(env, want) {
		t.Errorf("environment = %v, want %v", env, want)
	}
	params := asMap(tpl["Parameters"])
	for name, def := range map[string]any{"MemorySize": 1769, "Timeout": 900, "ReservedConcurrency": 50} {
		if got := asMap(params[name])["Default"]; got != def {
			t.Errorf("parameter %s default %v, want %v", name, got, def)
		}
	}
}

// TestTableMatchesDynamoStore compares the table with the definition the
// store itself creates in tests, so that the two cannot drift.
func TestTableMatchesDynamoStore(t *testing.T) {
	tpl := loadTemplate(t)
	p := tpl.props("Table")
	want := dynamostore.CreateTableInput("ignored")

	if got := p["BillingMode"]; got != string(want.BillingMode) {
		t.Errorf("BillingMode %v, want %v", got, want.BillingMode)
	}
	type kv = [2]string
	var gotAttrs, wantAttrs []kv
	for _, a := range asSlice(p["AttributeDefinitions"]) {
		gotAttrs = append(gotAttrs, kv{fmt.Sprint(asMap(a)["AttributeName"]), fmt.Sprint(asMap(a)["AttributeType"])})
	}
	for _, a := range want.AttributeDefinitions {
		wantAttrs = append(wantAttrs, kv{aws.ToString(a.AttributeName), string(a.AttributeType)})
	}
	sortKV := func(s []kv) { slices.SortFunc(s, func(a, b kv) int { return strings.Compare(a[0], b[0]) }) }
	sortKV(gotAttrs)
	sortKV(wantAttrs)
	if !slices.Equal(gotAttrs, wantAttrs) {
		t.Errorf("AttributeDefinitions %v, want %v", gotAttrs, wantAttrs)
	}
	keySchema := func(v any) []kv {
		var out []kv
		for _, k := range asSlice(v) {
			out = append(out, kv{fmt.Sprint(asMap(k)["AttributeName"]), fmt.Sprint(asMap(k)["KeyType"])})
		}
		return out
	}
	var wantKeys []kv
	for _, k := range want.KeySchema {
		wantKeys = append(wantKeys, kv{aws.ToString(k.AttributeName), string(k.KeyType)})
	}
	if got := keySchema(p["KeySchema"]); !slices.Equal(got, wantKeys) {
		t.Errorf("KeySchema %v, want %v", got, wantKeys)
	}
	gotGSI := map[string]string{}
	for _, g := range asSlice(p["GlobalSecondaryIndexes"]) {
		gotGSI[fmt.Sprint(asMap(g)["IndexName"])] = fmt.Sprint(keySchema(asMap(g)["KeySchema"]), asMap(asMap(g)["Projection"])["ProjectionType"])
	}
	wantGSI := map[string]string{}
	for _, g := range want.GlobalSecondaryIndexes {
		var ks []kv
		for _, k := range g.KeySchema {
			ks = append(ks, kv{aws.ToString(k.AttributeName), string(k.KeyType)})
		}
		wantGSI[aws.ToString(g.IndexName)] = fmt.Sprint(ks, string(g.Projection.ProjectionType))
	}
	if !reflect.DeepEqual(gotGSI, wantGSI) {
		t.Errorf("GlobalSecondaryIndexes %v, want %v", gotGSI, wantGSI)
	}
	if len(want.LocalSecondaryIndexes) != 0 || p["LocalSecondaryIndexes"] != nil {
		t.Errorf("local secondary indexes differ")
	}

	if asMap(p["PointInTimeRecoverySpecification"])["PointInTimeRecoveryEnabled"] != true {
		t.Error("point-in-time recovery is not enabled")
	}
	if sse := asMap(p["SSESpecification"]); sse["SSEEnabled"] != true || sse["SSEType"] != "KMS" {
		t.Errorf("SSESpecification %v, want SSEEnabled true, SSEType KMS", sse)
	}
	if p["DeletionProtectionEnabled"] != true {
		t.Error("deletion protection is not enabled")
	}
}

// cfnLint returns the cfn-lint to run: $ETHKEYGEN_CFN_LINT, else cfn-lint on
// the PATH. Without one the test skips, or fails under
// ETHKEYGEN_REQUIRE_INTEGRATION=1.
func cfnLint(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("ETHKEYGEN_CFN_LINT"); p != "" {
		return p
	}
	if p, err := exec.LookPath("cfn-lint"); err == nil {
		return p
	}
	if os.Getenv("ETHKEYGEN_REQUIRE_INTEGRATION") == "1" {
		t.Fatal("no cfn-lint: set ETHKEYGEN_CFN_LINT or put cfn-lint on the PATH (ETHKEYGEN_REQUIRE_INTEGRATION=1)")
	}
	t.Skip("no cfn-lint (set ETHKEYGEN_CFN_LINT or put cfn-lint on the PATH)")
	return ""
}

// TestCFNLint runs cfn-lint with the informational checks too; any finding
// fails the test.
func TestCFNLint(t *testing.T) {
	bin := cfnLint(t)
	version, _ := exec.CommandContext(t.Context(), bin, "--version").CombinedOutput()
	t.Logf("%s", bytes.TrimSpace(version))
	out, err := exec.CommandContext(t.Context(), bin, templateFile, "--include-checks", "I").CombinedOutput()
	if err != nil {
		t.Fatalf("cfn-lint %s: %v\n%s", templateFile, err, out)
	}
}

// TestRecordSigningKey: the generator's authenticator key is an ECC_NIST_P256
// signing key that only the generator role may Sign with (an explicit Deny
// for every other principal), retained, and granted to nobody; the
// generator's role may Sign with it and nothing else of it.
func TestRecordSigningKey(t *testing.T) {
	tpl := loadTemplate(t)
	p := tpl.props("RecordSigningKey")
	if p["KeySpec"] != "ECC_NIST_P256" || p["KeyUsage"] != "SIGN_VERIFY" {
		t.Fatalf("record-signing key: %v %v", p["KeySpec"], p["KeyUsage"])
	}
	if r := tpl.resource("RecordSigningKey"); r["DeletionPolicy"] != "Retain" {
		t.Fatal("record-signing key not retained")
	}
	b, _ := json.Marshal(p["KeyPolicy"])
	policy := string(b)
	for _, want := range []string{`"Sid":"DenySignToAllButTheGenerator"`, `"Action":"kms:Sign"`, `"ArnNotEquals"`, `"Sid":"DenyGrants"`} {
		if !strings.Contains(policy, want) {
			t.Errorf("record-signing key policy lacks %s", want)
		}
	}
	if strings.Contains(policy, "kms:*") || strings.Contains(policy, "kms:Decrypt") {
		t.Error("record-signing key policy grants kms:* or Decrypt")
	}
	sp, _ := json.Marshal(tpl.props("GeneratorSignPolicy")["PolicyDocument"])
	if !strings.Contains(string(sp), `"Action":"kms:Sign"`) || !strings.Contains(string(sp), "RecordSigningKey") || strings.Contains(string(sp), "DataKey") {
		t.Errorf("generator sign policy: %s", sp)
	}
}
