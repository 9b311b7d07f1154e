package attest

import (
	"context"
	"fmt"

	"github.com/hf/nsm"
	"github.com/hf/nsm/request"
)

// NSM is the production Attester: it asks the Nitro Security Module
// (/dev/nsm, present only inside a Nitro Enclave) for an attestation
// document carrying the given public key.
type NSM struct{}

var _ Attester = NSM{}

// Attest implements envelope.Attester.
func (NSM) Attest(ctx context.Context, publicKeyDER []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sess, err := nsm.OpenDefaultSession()
	if err != nil {
		return nil, fmt.Errorf("%w: opening /dev/nsm: %w", ErrNSM, err)
	}
	defer sess.Close()
	res, err := sess.Send(&request.Attestation{PublicKey: publicKeyDER})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNSM, err)
	}
	if res.Error != "" {
		return nil, fmt.Errorf("%w: %s", ErrNSM, res.Error)
	}
	if res.Attestation == nil || len(res.Attestation.Document) == 0 {
		return nil, fmt.Errorf("%w: no attestation document", ErrNSM)
	}
	return res.Attestation.Document, nil
}
