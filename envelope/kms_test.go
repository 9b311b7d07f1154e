package envelope_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/envelope/envelopetest"
)

var secretForErrors = []byte("SUPER-SECRET-PLAINTEXT-0123456789")

// checkNoSecret fails if err's text holds the plaintext in any common form.
func checkNoSecret(t *testing.T, err error) {
	t.Helper()
	s := err.Error()
	for _, form := range []string{string(secretForErrors), hex.EncodeToString(secretForErrors)} {
		if strings.Contains(strings.ToLower(s), strings.ToLower(form)) {
			t.Fatalf("error contains the plaintext: %v", err)
		}
	}
}

func apiCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}

func TestKMSRequests(t *testing.T) {
	ctx := context.Background()
	fake := envelopetest.NewKMS()
	arn := fake.CreateKey()
	fake.CreateAlias("alias/validators", arn)
	s := envelope.NewKMSSealer(fake, "alias/validators")
	o := envelope.NewKMSOpener(fake)
	ec := recordContext(testPubkey)
	sealed, err := s.Seal(ctx, secretForErrors, ec)
	if err != nil {
		t.Fatal(err)
	}
	if l := parseLayout(t, sealed); l.keyID != arn {
		t.Fatalf("key ID in blob = %q, want the key ARN %q", l.keyID, arn)
	}
	if _, err := o.Open(ctx, sealed, ec); err != nil {
		t.Fatal(err)
	}
	want := maps.Clone(ec)
	want[envelope.FormatKey] = envelope.FormatVersion
	reqs := fake.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	if r := reqs[0]; r.Op != envelopetest.OpGenerateDataKey || r.KeyID != "alias/validators" || !maps.Equal(r.EncryptionContext, want) {
		t.Errorf("GenerateDataKey request = %+v", r)
	}
	if r := reqs[1]; r.Op != envelopetest.OpDecrypt || r.KeyID != arn || !maps.Equal(r.EncryptionContext, want) || r.HasRecipient {
		t.Errorf("Decrypt request = %+v (want KeyId pinned to the ARN)", r)
	}
}

func TestKMSContextMismatchRejectedByKMS(t *testing.T) {
	ctx := context.Background()
	fake := envelopetest.NewKMS()
	s := envelope.NewKMSSealer(fake, fake.CreateKey())
	sealed, err := s.Seal(ctx, secretForErrors, recordContext(testPubkey))
	if err != nil {
		t.Fatal(err)
	}
	_, err = envelope.NewKMSOpener(fake).Open(ctx, sealed, recordContext("other"))
	if err != envelope.ErrAuth {
		t.Fatalf("got %v, want ErrAuth", err)
	}
	if fake.Calls(envelopetest.OpDecrypt) != 1 {
		t.Fatal("KMS Decrypt was not called")
	}
}

// contextIgnoringKMS forwards Decrypt with the context the data key was
// generated under, whatever the caller asked for: a KMS that does not enforce
// EncryptionContext. The GCM associated data must still reject the mismatch.
type contextIgnoringKMS struct {
	*envelopetest.KMS
	ec map[string]string
}

func (k contextIgnoringKMS) Decrypt(ctx context.Context, in *kms.DecryptInput, opts ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	in2 := *in
	in2.EncryptionContext = k.ec
	return k.KMS.Decrypt(ctx, &in2, opts...)
}

func TestKMSContextMismatchRejectedByGCM(t *testing.T) {
	ctx := context.Background()
	fake := envelopetest.NewKMS()
	s := envelope.NewKMSSealer(fake, fake.CreateKey())
	ecA := recordContext(testPubkey)
	sealed, err := s.Seal(ctx, secretForErrors, ecA)
	if err != nil {
		t.Fatal(err)
	}
	full := maps.Clone(ecA)
	full[envelope.FormatKey] = envelope.FormatVersion
	o := envelope.NewKMSOpener(contextIgnoringKMS{fake, full})
	if _, err := o.Open(ctx, sealed, ecA); err != nil {
		t.Fatalf("same context: %v", err)
	}
	if _, err := o.Open(ctx, sealed, recordContext("other")); err != envelope.ErrAuth {
		t.Fatalf("other context: %v, want ErrAuth", err)
	}
}

func TestKMSInjectedErrors(t *testing.T) {
	ctx := context.Background()
	ec := recordContext(testPubkey)
	for _, tc := range []struct {
		name string
		op   string
		err  func() error
		code string
	}{
		{"GenerateDataKey AccessDenied", envelopetest.OpGenerateDataKey, envelopetest.AccessDenied, "AccessDeniedException"},
		{"GenerateDataKey Throttling", envelopetest.OpGenerateDataKey, envelopetest.Throttling, "ThrottlingException"},
		{"Decrypt AccessDenied", envelopetest.OpDecrypt, envelopetest.AccessDenied, "AccessDeniedException"},
		{"Decrypt Throttling", envelopetest.OpDecrypt, envelopetest.Throttling, "ThrottlingException"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := envelopetest.NewKMS()
			s := envelope.NewKMSSealer(fake, fake.CreateKey())
			o := envelope.NewKMSOpener(fake)
			var sealed []byte
			if tc.op == envelopetest.OpDecrypt {
				var err error
				if sealed, err = s.Seal(ctx, secretForErrors, ec); err != nil {
					t.Fatal(err)
				}
			}
			fake.Fail(tc.op, -1, tc.err())
			var err error
			if tc.op == envelopetest.OpDecrypt {
				_, err = o.Open(ctx, sealed, ec)
			} else {
				_, err = s.Seal(ctx, secretForErrors, ec)
			}
			if !errors.Is(err, envelope.ErrProvider) {
				t.Fatalf("got %v, want ErrProvider", err)
			}
			if errors.Is(err, envelope.ErrAuth) {
				t.Fatal("provider failure reported as ErrAuth")
			}
			if got := apiCode(err); got != tc.code {
				t.Fatalf("API error code %q, want %q (err %v)", got, tc.code, err)
			}
			var opErr *smithy.OperationError
			if !errors.As(err, &opErr) || opErr.Operation() != tc.op {
				t.Fatalf("no OperationError for %s in %v", tc.op, err)
			}
			if !strings.Contains(err.Error(), tc.code) {
				t.Fatalf("error text %q lacks %s", err, tc.code)
			}
			checkNoSecret(t, err)
		})
	}
}

func TestKMSFailThenSucceed(t *testing.T) {
	ctx := context.Background()
	fake := envelopetest.NewKMS()
	s := envelope.NewKMSSealer(fake, fake.CreateKey())
	fake.Fail(envelopetest.OpGenerateDataKey, 2, envelopetest.Throttling())
	var sealed []byte
	var err error
	for range 3 { // a caller's retry loop
		if sealed, err = s.Seal(ctx, secretForErrors, nil); err == nil {
			break
		}
		if apiCode(err) != "ThrottlingException" {
			t.Fatalf("unexpected error %v", err)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if n := fake.Calls(envelopetest.OpGenerateDataKey); n != 3 {
		t.Fatalf("%d GenerateDataKey calls, want 3", n)
	}
	pt, err := envelope.NewKMSOpener(fake).Open(ctx, sealed, nil)
	if err != nil || !bytes.Equal(pt, secretForErrors) {
		t.Fatalf("Open after retries: %v", err)
	}
}

func TestKMSKeyErrors(t *testing.T) {
	ctx := context.Background()
	fake := envelopetest.NewKMS()
	arn := fake.CreateKey()
	sealed, err := envelope.NewKMSSealer(fake, arn).Seal(ctx, secretForErrors, nil)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("seal unknown key", func(t *testing.T) {
		_, err := envelope.NewKMSSealer(fake, "alias/nope").Seal(ctx, secretForErrors, nil)
		var nf *types.NotFoundException
		if !errors.Is(err, envelope.ErrProvider) || !errors.As(err, &nf) {
			t.Fatalf("got %v, want ErrProvider wrapping NotFoundException", err)
		}
		checkNoSecret(t, err)
	})
	t.Run("open in another account", func(t *testing.T) {
		_, err := envelope.NewKMSOpener(envelopetest.NewKMS()).Open(ctx, sealed, nil)
		if !errors.Is(err, envelope.ErrProvider) || apiCode(err) != "NotFoundException" {
			t.Fatalf("got %v, want ErrProvider wrapping NotFoundException", err)
		}
	})
	t.Run("disabled key", func(t *testing.T) {
		fake.SetKeyEnabled(arn, false)
		defer fake.SetKeyEnabled(arn, true)
		_, err := envelope.NewKMSOpener(fake).Open(ctx, sealed, nil)
		if !errors.Is(err, envelope.ErrProvider) || apiCode(err) != "DisabledException" {
			t.Fatalf("got %v, want ErrProvider wrapping DisabledException", err)
		}
	})
	t.Run("key ID swapped for another key", func(t *testing.T) {
		// Re-point the blob at another existing key of the same length:
		// KMS refuses (IncorrectKeyException), which is an authentication
		// failure, not a provider outage.
		other := fake.CreateKey()
		b := bytes.Replace(bytes.Clone(sealed), []byte(arn), []byte(other), 1)
		if _, err := envelope.NewKMSOpener(fake).Open(ctx, b, nil); err != envelope.ErrAuth {
			t.Fatalf("got %v, want ErrAuth", err)
		}
	})
}

// Lying KMS responses must not be trusted.
type badDecryptKMS struct {
	out *kms.DecryptOutput
}

func (k badDecryptKMS) Decrypt(context.Context, *kms.DecryptInput, ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	return k.out, nil
}

func TestKMSBadResponses(t *testing.T) {
	ctx := context.Background()
	fake := envelopetest.NewKMS()
	arn := fake.CreateKey()
	sealed, err := envelope.NewKMSSealer(fake, arn).Seal(ctx, secretForErrors, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]*kms.DecryptOutput{
		"short key":  {KeyId: &arn, Plaintext: make([]byte, 16)},
		"no key":     {KeyId: &arn},
		"other key":  {KeyId: new("arn:aws:kms:eu-west-1:111122223333:key/other"), Plaintext: make([]byte, 32)},
		"wrong key":  {KeyId: &arn, Plaintext: make([]byte, 32)},
		"recipient?": {KeyId: &arn, CiphertextForRecipient: []byte{1}},
	} {
		if _, err := envelope.NewKMSOpener(badDecryptKMS{out}).Open(ctx, sealed, nil); err != envelope.ErrAuth {
			t.Errorf("%s: %v, want ErrAuth", name, err)
		}
	}
}
