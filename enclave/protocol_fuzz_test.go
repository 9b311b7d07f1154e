package enclave_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ethkeygen/ethkeygen/enclave"
)

// fuzzFrame frames a raw payload as WriteMessage does.
func fuzzFrame(payload string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(payload)))
	return append(b, payload...)
}

// FuzzReadMessage: any bytes on the vsock connection. ReadMessage never
// panics or reads past the frame it announced; a refusal is one of the
// transport errors, one line, and does not quote the payload (it may hold
// credentials); an accepted message has exactly the payload its type names
// and survives WriteMessage/ReadMessage unchanged.
func FuzzReadMessage(f *testing.F) {
	var good bytes.Buffer
	lr := &enclave.LoadRequest{Version: enclave.ProtocolVersion, Region: "eu-west-1",
		Credentials: enclave.Credentials{AccessKeyID: "AKIDFUZZ", SecretAccessKey: "fuzz-secret-access-key", SessionToken: "fuzz-token",
			Expires: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)},
		GenesisValidatorsRoot: strings.Repeat("00", 32),
		Records:               []enclave.Record{{Pubkey: strings.Repeat("ab", 48), RequestID: "r", Network: "hoodi", Sealed: []byte("sealed"), Status: "exported"}}}
	if err := enclave.WriteMessage(&good, &enclave.Message{Type: enclave.TypeLoad, Load: lr}); err != nil {
		f.Fatal(err)
	}
	f.Add(good.Bytes())
	var res bytes.Buffer
	_ = enclave.WriteMessage(&res, &enclave.Message{Type: enclave.TypeResult, Result: &enclave.Result{OK: false, Error: "refused",
		Keys: []enclave.KeyStatus{{Pubkey: strings.Repeat("ab", 48), Status: enclave.KeyRefused, Reason: "retired"}}}})
	f.Add(res.Bytes())
	for _, p := range []string{
		`{"type":"load"}`,
		`{"type":"result","result":{"ok":true},"load":{}}`,
		`{"type":"load","load":{"credentials":{"secret_access_key":"fuzz-secret-access-key"}},"x":1}`,
		`{"type":"result","result":{"ok":true}} {}`,
		`{"type":"result","result":{"ok":true}`,
	} {
		f.Add(fuzzFrame(p))
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0, 0, 1})
	f.Add([]byte{0, 0, 0, 9, '{'})
	const max = 1 << 16
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		m, err := enclave.ReadMessage(r, max)
		consumed := len(data) - r.Len()
		if len(data) >= 4 {
			if n := int(binary.BigEndian.Uint32(data)); consumed > 4+n {
				t.Fatalf("read %d bytes of a %d-byte frame", consumed, n)
			}
		}
		if err != nil {
			if m != nil {
				t.Fatal("a message and an error")
			}
			msg := err.Error()
			if strings.ContainsAny(msg, "\r\n") {
				t.Fatalf("error %q is not one line", msg)
			}
			if strings.Contains(msg, "fuzz-secret") {
				t.Fatalf("error quotes the payload: %q", msg)
			}
			if !errors.Is(err, enclave.ErrTooLarge) && !errors.Is(err, enclave.ErrTruncated) && !errors.Is(err, enclave.ErrProtocol) &&
				!strings.HasPrefix(msg, "enclave: receiving: ") {
				t.Fatalf("unexpected error %q", msg)
			}
			return
		}
		switch {
		case m.Type == enclave.TypeLoad && m.Load != nil && m.Result == nil:
		case m.Type == enclave.TypeResult && m.Result != nil && m.Load == nil:
		default:
			t.Fatalf("accepted message %+v", m)
		}
		var buf bytes.Buffer
		if err := enclave.WriteMessage(&buf, m); err != nil {
			t.Fatalf("accepted message does not re-encode: %v", err)
		}
		m2, err := enclave.ReadMessage(&buf, max)
		if err != nil {
			t.Fatalf("re-encoded message fails: %v", err)
		}
		var b1, b2 bytes.Buffer
		_ = enclave.WriteMessage(&b1, m)
		_ = enclave.WriteMessage(&b2, m2)
		if !bytes.Equal(b1.Bytes(), b2.Bytes()) {
			t.Fatalf("round trip changed the message:\n%s\n%s", b1.Bytes(), b2.Bytes())
		}
	})
}

// FuzzReadSignMessage: any payload framed as a message. ReadMessage never
// panics; a sign request it accepts has 1 to MaxRecords items and only the
// field of its operation, and survives WriteMessage/ReadMessage unchanged;
// a Signed answer's exits and changes parse or are refused with
// ErrProtocol.
func FuzzReadSignMessage(f *testing.F) {
	item := enclave.SignItem{Record: enclave.Record{Pubkey: strings.Repeat("ab", 48), Network: "hoodi", Sealed: []byte("sealed")}, State: "exit-signed", ValidatorIndex: 7}
	for _, m := range []*enclave.Message{
		{Type: enclave.TypeSignExits, Sign: &enclave.SignRequest{Version: 1, Region: "eu-west-1", Epoch: 3, Items: []enclave.SignItem{item}}},
		{Type: enclave.TypeSignBLSChanges, Sign: &enclave.SignRequest{Version: 1, ToExecutionAddress: "0x5b38da6a701c568545dcfcb03fcb875f56beddc4", Items: []enclave.SignItem{item}}},
		{Type: enclave.TypeSigned, Signed: &enclave.Signed{OK: true, Keys: []enclave.KeyStatus{{Pubkey: item.Record.Pubkey, Status: enclave.KeySigned}},
			Exits: []json.RawMessage{json.RawMessage(`{"message":{"epoch":"3","validator_index":"7"},"signature":"0x` + strings.Repeat("00", 96) + `"}`)}}},
	} {
		var b bytes.Buffer
		if err := enclave.WriteMessage(&b, m); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes()[4:])
	}
	for _, p := range []string{
		`{"type":"sign_exits","sign":{"version":1,"items":[]}}`,
		`{"type":"sign_exits","sign":{"version":1,"items":[{}]},"load":{}}`,
		`{"type":"sign_bls_changes","sign":{"version":1,"epoch":1,"to_execution_address":"0x00","items":[{}]}}`,
		`{"type":"signed","signed":{"ok":true,"bls_changes":[{"message":{}}]}}`,
		`{"type":"signed","signed":{"ok":true,"exits":[1]}}`,
	} {
		f.Add([]byte(p))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		m, err := enclave.ReadMessage(bytes.NewReader(fuzzFrame(string(payload))), 1<<16)
		if err != nil {
			if !errors.Is(err, enclave.ErrProtocol) && !errors.Is(err, enclave.ErrTooLarge) && !errors.Is(err, enclave.ErrTruncated) {
				t.Fatalf("refusal %v is no transport error", err)
			}
			return
		}
		switch m.Type {
		case enclave.TypeSignExits, enclave.TypeSignBLSChanges:
			if m.Sign == nil || len(m.Sign.Items) == 0 || len(m.Sign.Items) > enclave.MaxRecords || m.Load != nil || m.Result != nil || m.Signed != nil {
				t.Fatalf("accepted a malformed sign request: %s", payload)
			}
			if (m.Type == enclave.TypeSignExits) == (m.Sign.ToExecutionAddress != "") {
				t.Fatalf("accepted a %s with address %q", m.Type, m.Sign.ToExecutionAddress)
			}
			var b bytes.Buffer
			if err := enclave.WriteMessage(&b, m); err != nil {
				t.Fatal(err)
			}
			again, err := enclave.ReadMessage(&b, 1<<16)
			if err != nil || len(again.Sign.Items) != len(m.Sign.Items) || again.Sign.Epoch != m.Sign.Epoch {
				t.Fatalf("round trip: %v", err)
			}
		case enclave.TypeSigned:
			if _, err := enclave.ParseSignedExits(m.Signed); err != nil && !errors.Is(err, enclave.ErrProtocol) {
				t.Fatalf("exits refused with %v", err)
			}
			if _, err := enclave.ParseSignedBLSChanges(m.Signed); err != nil && !errors.Is(err, enclave.ErrProtocol) {
				t.Fatalf("changes refused with %v", err)
			}
		}
	})
}
