// Package envelopetest provides test doubles for package envelope that
// enforce the behaviour of the real services, so that tests which pass
// against them exercise the same failure modes as production.
package envelopetest

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/ethkeygen/ethkeygen/envelope"
)

// Operation names, as used by KMS and by [KMS.Calls] and [KMS.Fail].
const (
	OpGenerateDataKey = "GenerateDataKey"
	OpDecrypt         = "Decrypt"
)

var (
	_ envelope.KMSGenerateAPI = (*KMS)(nil)
	_ envelope.KMSDecryptAPI  = (*KMS)(nil)
)

// KMS is an in-memory fake of the AWS KMS symmetric-key data-key API. It is
// safe for concurrent use. Like the real service it:
//
//   - really encrypts data keys (AES-256-GCM under a per-key master key), so
//     ciphertext blobs are opaque, tamper-evident and tied to their key;
//   - binds the EncryptionContext: Decrypt with a different context (or a
//     tampered blob) fails with InvalidCiphertextException;
//   - fails with NotFoundException for an unknown key, IncorrectKeyException
//     when Decrypt's KeyId is not the key the blob was made with, and
//     DisabledException for a disabled key;
//   - returns errors as the SDK does: a *smithy.OperationError wrapping a
//     smithy.APIError that carries the real AWS error code.
//
// Failures can be injected with [KMS.Fail], and calls are counted.
type KMS struct {
	region  string
	account string

	mu       sync.Mutex
	keys     map[string]*fakeKey // by ARN
	aliases  map[string]string   // alias name ("alias/x") -> ARN
	calls    map[string]int
	failures map[string][]*injected
	requests []Request
}

type fakeKey struct {
	arn      string
	master   []byte
	disabled bool
}

type injected struct {
	remaining int // < 0: forever
	err       error
}

// Request records one call made to the fake.
type Request struct {
	Op                string
	KeyID             string            // KeyId as sent ("" if nil)
	EncryptionContext map[string]string // a copy
	HasRecipient      bool              // Decrypt sent a Recipient
}

// NewKMS returns an empty fake in region eu-west-1, account 111122223333.
func NewKMS() *KMS {
	return &KMS{
		region:   "eu-west-1",
		account:  "111122223333",
		keys:     map[string]*fakeKey{},
		aliases:  map[string]string{},
		calls:    map[string]int{},
		failures: map[string][]*injected{},
	}
}

// CreateKey creates a symmetric key with random key material and returns its
// ARN.
func (k *KMS) CreateKey() string {
	id := make([]byte, 16)
	rand.Read(id)
	h := hex.EncodeToString(id)
	keyID := h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
	arn := fmt.Sprintf("arn:aws:kms:%s:%s:key/%s", k.region, k.account, keyID)
	master := make([]byte, 32)
	rand.Read(master)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.keys[arn] = &fakeKey{arn: arn, master: master}
	return arn
}

// CreateAlias points alias (which must start with "alias/") at the key arn.
func (k *KMS) CreateAlias(alias, arn string) {
	if !strings.HasPrefix(alias, "alias/") {
		panic("envelopetest: alias must start with alias/")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.keys[arn]; !ok {
		panic("envelopetest: CreateAlias: unknown key " + arn)
	}
	k.aliases[alias] = arn
}

// SetKeyEnabled enables or disables a key; using a disabled key fails with
// DisabledException.
func (k *KMS) SetKeyEnabled(arn string, enabled bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	key, ok := k.keys[arn]
	if !ok {
		panic("envelopetest: SetKeyEnabled: unknown key " + arn)
	}
	key.disabled = !enabled
}

// Fail makes the next n calls of op (OpGenerateDataKey or OpDecrypt) fail
// with err, after which calls succeed again; n < 0 fails every call until
// [KMS.ClearFailures]. Failures queue in the order they were added. A failed
// call is still counted. Use [AccessDenied], [Throttling] or any error.
func (k *KMS) Fail(op string, n int, err error) {
	if n == 0 {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.failures[op] = append(k.failures[op], &injected{remaining: n, err: err})
}

// ClearFailures removes all injected failures.
func (k *KMS) ClearFailures() {
	k.mu.Lock()
	defer k.mu.Unlock()
	clear(k.failures)
}

// Calls reports how many times op was called, including failed calls.
func (k *KMS) Calls(op string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.calls[op]
}

// Requests returns a copy of every request received, in order.
func (k *KMS) Requests() []Request {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.requests)
}

// AccessDenied returns the error KMS returns when the key policy or IAM does
// not allow the call (code "AccessDeniedException").
func AccessDenied() error {
	return &smithy.GenericAPIError{
		Code:    "AccessDeniedException",
		Message: "User: arn:aws:sts::111122223333:assumed-role/test is not authorized to perform this operation",
		Fault:   smithy.FaultClient,
	}
}

// Throttling returns the error KMS returns when the request rate is exceeded
// (code "ThrottlingException").
func Throttling() error {
	return &smithy.GenericAPIError{
		Code:    "ThrottlingException",
		Message: "Rate exceeded",
		Fault:   smithy.FaultClient,
	}
}

// begin counts the call, records it and returns an injected failure if any.
func (k *KMS) begin(ctx context.Context, op string, r Request) error {
	r.Op = op
	r.EncryptionContext = maps.Clone(r.EncryptionContext)
	k.calls[op]++
	k.requests = append(k.requests, r)
	if err := ctx.Err(); err != nil {
		return err
	}
	if q := k.failures[op]; len(q) > 0 {
		f := q[0]
		if f.remaining > 0 {
			f.remaining--
			if f.remaining == 0 {
				k.failures[op] = q[1:]
			}
		}
		return f.err
	}
	return nil
}

func opError(op string, err error) error {
	return &smithy.OperationError{ServiceID: "KMS", OperationName: op, Err: err}
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// resolve finds a key by key ID, key ARN, alias name or alias ARN. k.mu held.
func (k *KMS) resolve(id string) (*fakeKey, error) {
	if id == "" {
		return nil, &smithy.GenericAPIError{Code: "ValidationException", Message: "KeyId is required", Fault: smithy.FaultClient}
	}
	if key, ok := k.keys[id]; ok {
		return key, nil
	}
	aliasPrefix := fmt.Sprintf("arn:aws:kms:%s:%s:", k.region, k.account)
	name := strings.TrimPrefix(id, aliasPrefix)
	if strings.HasPrefix(name, "alias/") {
		if arn, ok := k.aliases[name]; ok {
			return k.keys[arn], nil
		}
	} else if key, ok := k.keys[aliasPrefix+"key/"+id]; ok {
		return key, nil
	}
	return nil, &types.NotFoundException{Message: ptr(fmt.Sprintf("Key '%s' does not exist", id))}
}

func ptr[T any](v T) *T { return &v }

// GenerateDataKey implements envelope.KMSGenerateAPI.
func (k *KMS) GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, _ ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if in == nil {
		in = &kms.GenerateDataKeyInput{}
	}
	if err := k.begin(ctx, OpGenerateDataKey, Request{KeyID: str(in.KeyId), EncryptionContext: in.EncryptionContext}); err != nil {
		return nil, opError(OpGenerateDataKey, err)
	}
	key, err := k.resolve(str(in.KeyId))
	if err != nil {
		return nil, opError(OpGenerateDataKey, err)
	}
	if key.disabled {
		return nil, opError(OpGenerateDataKey, &types.DisabledException{Message: ptr(key.arn + " is disabled.")})
	}
	var size int
	switch {
	case in.KeySpec != "" && in.NumberOfBytes != nil:
		return nil, opError(OpGenerateDataKey, validation("specify either KeySpec or NumberOfBytes, not both"))
	case in.KeySpec == types.DataKeySpecAes256:
		size = 32
	case in.KeySpec == types.DataKeySpecAes128:
		size = 16
	case in.NumberOfBytes != nil && *in.NumberOfBytes >= 1 && *in.NumberOfBytes <= 1024:
		size = int(*in.NumberOfBytes)
	default:
		return nil, opError(OpGenerateDataKey, validation("KeySpec or NumberOfBytes is required"))
	}
	plaintext := make([]byte, size)
	rand.Read(plaintext)
	blob := wrap(key, plaintext, in.EncryptionContext)
	return &kms.GenerateDataKeyOutput{
		KeyId:          ptr(key.arn),
		Plaintext:      plaintext,
		CiphertextBlob: blob,
	}, nil
}

// Decrypt implements envelope.KMSDecryptAPI. Recipient (Nitro Enclaves
// attestation) is not supported and fails with ValidationException.
func (k *KMS) Decrypt(ctx context.Context, in *kms.DecryptInput, _ ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if in == nil {
		in = &kms.DecryptInput{}
	}
	if err := k.begin(ctx, OpDecrypt, Request{KeyID: str(in.KeyId), EncryptionContext: in.EncryptionContext, HasRecipient: in.Recipient != nil}); err != nil {
		return nil, opError(OpDecrypt, err)
	}
	if in.Recipient != nil {
		return nil, opError(OpDecrypt, validation("envelopetest: Recipient is not supported by the fake"))
	}
	if len(in.CiphertextBlob) == 0 {
		return nil, opError(OpDecrypt, validation("CiphertextBlob is required"))
	}
	var want *fakeKey
	if in.KeyId != nil {
		var err error
		if want, err = k.resolve(*in.KeyId); err != nil {
			return nil, opError(OpDecrypt, err)
		}
	}
	blobARN, nonce, ct, ok := splitBlob(in.CiphertextBlob)
	if !ok {
		return nil, opError(OpDecrypt, invalidCiphertext())
	}
	key, found := k.keys[blobARN]
	if want != nil && (!found || want != key) {
		return nil, opError(OpDecrypt, &types.IncorrectKeyException{
			Message: ptr("The key ID in the request does not identify a CMK that can perform this operation."),
		})
	}
	if !found {
		return nil, opError(OpDecrypt, invalidCiphertext())
	}
	if key.disabled {
		return nil, opError(OpDecrypt, &types.DisabledException{Message: ptr(key.arn + " is disabled.")})
	}
	aead := gcm(key.master)
	plaintext, err := aead.Open(nil, nonce, ct, aad(key.arn, in.EncryptionContext))
	if err != nil {
		return nil, opError(OpDecrypt, invalidCiphertext())
	}
	return &kms.DecryptOutput{
		KeyId:               ptr(key.arn),
		Plaintext:           plaintext,
		EncryptionAlgorithm: types.EncryptionAlgorithmSpecSymmetricDefault,
	}, nil
}

func validation(msg string) error {
	return &smithy.GenericAPIError{Code: "ValidationException", Message: msg, Fault: smithy.FaultClient}
}

func invalidCiphertext() error {
	// Real KMS gives no detail either.
	return &types.InvalidCiphertextException{}
}

// Fake ciphertext blob: "FKMS" | u16 len(arn) | arn | 12-byte nonce | GCM(ct||tag).
const blobMagic = "FKMS"

func wrap(key *fakeKey, plaintext []byte, ec map[string]string) []byte {
	nonce := make([]byte, 12)
	rand.Read(nonce)
	b := []byte(blobMagic)
	b = binary.BigEndian.AppendUint16(b, uint16(len(key.arn)))
	b = append(b, key.arn...)
	b = append(b, nonce...)
	return gcm(key.master).Seal(b, nonce, plaintext, aad(key.arn, ec))
}

func splitBlob(b []byte) (arn string, nonce, ct []byte, ok bool) {
	if len(b) < len(blobMagic)+2 || string(b[:len(blobMagic)]) != blobMagic {
		return "", nil, nil, false
	}
	b = b[len(blobMagic):]
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if n > len(b) || len(b)-n < 12+16 {
		return "", nil, nil, false
	}
	return string(b[:n]), b[n : n+12], b[n+12:], true
}

// aad encodes the key ARN and the encryption context unambiguously. As in
// KMS, a nil and an empty context are the same.
func aad(arn string, ec map[string]string) []byte {
	var b []byte
	put := func(s string) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	put(arn)
	keys := slices.Sorted(maps.Keys(ec))
	b = binary.BigEndian.AppendUint32(b, uint32(len(keys)))
	for _, k := range keys {
		put(k)
		put(ec[k])
	}
	return b
}

func gcm(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return aead
}
