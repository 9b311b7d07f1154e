package envelope

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"reflect"
)

// This file parses and opens the CMS EnvelopedData (RFC 5652) that KMS
// returns as CiphertextForRecipient, and nothing else:
//
//	ContentInfo ::= SEQUENCE {
//	  contentType  id-envelopedData (1.2.840.113549.1.7.3),
//	  content      [0] EXPLICIT EnvelopedData }
//	EnvelopedData ::= SEQUENCE {
//	  version               2,   -- no originatorInfo
//	  recipientInfos        SET SIZE (1) OF KeyTransRecipientInfo,
//	  encryptedContentInfo  EncryptedContentInfo }  -- no unprotectedAttrs
//	KeyTransRecipientInfo ::= SEQUENCE {
//	  version                 2,
//	  rid                     [0] IMPLICIT SubjectKeyIdentifier, -- not
//	                          -- compared: KMS does not document how it derives
//	                          -- it, there is exactly one recipient, and OAEP
//	                          -- under the ephemeral key is the real check
//	  keyEncryptionAlgorithm  rsaes-oaep (1.2.840.113549.1.1.7) with
//	                          hashFunc sha256, maskGenFunc mgf1(sha256),
//	                          pSourceFunc absent or pSpecified(empty),
//	  encryptedKey            OCTET STRING }
//	EncryptedContentInfo ::= SEQUENCE {
//	  contentType                 id-data (1.2.840.113549.1.7.1),
//	  contentEncryptionAlgorithm  aes256-CBC (2.16.840.1.101.3.4.1.42),
//	                              parameters: the 16-byte IV,
//	  encryptedContent            [0] IMPLICIT OCTET STRING }
//
// KMS encodes the outer structure in BER with indefinite lengths and splits
// encryptedContent into a constructed string of OCTET STRING chunks (as the
// AWS Nitro Enclaves SDK's parser expects), which encoding/asn1 (DER only)
// cannot read. So a minimal BER walker frames the constructed elements, and
// every leaf (OIDs, integers, the recipient info, algorithm identifiers) is
// decoded by encoding/asn1 as DER. Everything else is rejected: high tag
// numbers, non-minimal lengths, indefinite primitives, nesting deeper than
// maxBERDepth, trailing bytes, extra or missing fields, other algorithms,
// and padding that is not exact PKCS#7.

var (
	oidEnvelopedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 3}
	oidData          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidRSAESOAEP     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 7}
	oidMGF1          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
	oidPSpecified    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 9}
	oidSHA256        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidAES256CBC     = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
)

const (
	maxBERDepth          = 8
	maxCMSSize           = 64 << 10
	maxRecipientContent  = 4096
	envelopedDataVersion = 2
	ktriVersion          = 2
)

// berElement is one BER TLV. All slices alias the input.
type berElement struct {
	class       int
	tag         int
	constructed bool
	full        []byte // the whole encoding: header, content (and end-of-contents)
	content     []byte // the contents octets (excluding end-of-contents)
}

func (e berElement) is(class, tag int, constructed bool) bool {
	return e.class == class && e.tag == tag && e.constructed == constructed
}

// readBER reads one element from b and returns it and the bytes after it.
func readBER(b []byte, depth int) (berElement, []byte, error) {
	var e berElement
	if depth > maxBERDepth {
		return e, nil, fmt.Errorf("%w: nested too deeply", errCMS)
	}
	if len(b) < 2 {
		return e, nil, fmt.Errorf("%w: truncated", errCMS)
	}
	e.class = int(b[0] >> 6)
	e.constructed = b[0]&0x20 != 0
	e.tag = int(b[0] & 0x1f)
	if e.tag == 0x1f {
		return e, nil, fmt.Errorf("%w: high tag number", errCMS)
	}
	if e.class == 0 && e.tag == 0 {
		return e, nil, fmt.Errorf("%w: unexpected end-of-contents", errCMS)
	}
	l := int(b[1])
	hdr := 2
	switch {
	case l < 0x80:
	case l == 0x80:
		if !e.constructed {
			return e, nil, fmt.Errorf("%w: indefinite length on a primitive", errCMS)
		}
		rest := b[hdr:]
		for {
			if len(rest) >= 2 && rest[0] == 0 && rest[1] == 0 {
				end := len(b) - len(rest)
				e.content = b[hdr:end]
				e.full = b[:end+2]
				return e, rest[2:], nil
			}
			var err error
			if _, rest, err = readBER(rest, depth+1); err != nil {
				return e, nil, err
			}
		}
	default:
		n := l & 0x7f
		if n > 3 || len(b) < 2+n {
			return e, nil, fmt.Errorf("%w: bad length", errCMS)
		}
		if b[2] == 0 {
			return e, nil, fmt.Errorf("%w: non-minimal length", errCMS)
		}
		l = 0
		for _, c := range b[2 : 2+n] {
			l = l<<8 | int(c)
		}
		if l < 0x80 {
			return e, nil, fmt.Errorf("%w: non-minimal length", errCMS)
		}
		hdr += n
	}
	if l > len(b)-hdr {
		return e, nil, fmt.Errorf("%w: truncated", errCMS)
	}
	e.content = b[hdr : hdr+l]
	e.full = b[:hdr+l]
	return e, b[hdr+l:], nil
}

// children splits the contents of a constructed element into exactly n
// elements.
func children(e berElement, n, depth int) ([]berElement, error) {
	if !e.constructed {
		return nil, fmt.Errorf("%w: expected a constructed element", errCMS)
	}
	var out []berElement
	rest := e.content
	for len(rest) > 0 {
		if len(out) == n {
			return nil, fmt.Errorf("%w: unexpected extra field", errCMS)
		}
		c, r, err := readBER(rest, depth+1)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
		rest = r
	}
	if len(out) != n {
		return nil, fmt.Errorf("%w: missing field", errCMS)
	}
	return out, nil
}

// derLeaf decodes a whole element with strictDER.
func derLeaf(e berElement, v any) error { return strictDER(e.full, v) }

// strictDER decodes b into v (a pointer) with encoding/asn1, which must
// consume all of b, and checks that v encodes back to exactly b. The check
// catches what encoding/asn1 tolerates, such as an EXPLICIT tag whose
// length disagrees with its contents.
func strictDER(b []byte, v any) error {
	rest, err := asn1.Unmarshal(b, v)
	if err != nil || len(rest) != 0 {
		return fmt.Errorf("%w: bad field", errCMS)
	}
	again, err := asn1.Marshal(reflect.ValueOf(v).Elem().Interface())
	if err != nil || !bytes.Equal(again, b) {
		return fmt.Errorf("%w: field is not DER", errCMS)
	}
	return nil
}

func expectOID(e berElement, want asn1.ObjectIdentifier) error {
	var oid asn1.ObjectIdentifier
	if !e.is(asn1.ClassUniversal, asn1.TagOID, false) {
		return fmt.Errorf("%w: expected an OID", errCMS)
	}
	if err := derLeaf(e, &oid); err != nil {
		return err
	}
	if !oid.Equal(want) {
		return fmt.Errorf("%w: unexpected OID %v", errCMS, oid)
	}
	return nil
}

func expectInt(e berElement, want int) error {
	var v int
	if !e.is(asn1.ClassUniversal, asn1.TagInteger, false) {
		return fmt.Errorf("%w: expected an INTEGER", errCMS)
	}
	if err := derLeaf(e, &v); err != nil {
		return err
	}
	if v != want {
		return fmt.Errorf("%w: version %d", errCMS, v)
	}
	return nil
}

type keyTransRecipientInfo struct {
	Version                int
	RID                    asn1.RawValue
	KeyEncryptionAlgorithm pkix.AlgorithmIdentifier
	EncryptedKey           []byte
}

type rsaesOAEPParams struct {
	HashFunc    pkix.AlgorithmIdentifier `asn1:"explicit,tag:0,optional"`
	MaskGenFunc pkix.AlgorithmIdentifier `asn1:"explicit,tag:1,optional"`
	PSourceFunc pkix.AlgorithmIdentifier `asn1:"explicit,tag:2,optional"`
}

// envelopedData is what openEnvelopedData needs from a parsed message.
type envelopedData struct {
	encryptedKey []byte
	iv           []byte
	ciphertext   []byte
}

var derNull = []byte{0x05, 0x00}

// isSHA256 accepts sha256 with absent or NULL parameters.
func isSHA256(a pkix.AlgorithmIdentifier) bool {
	return a.Algorithm.Equal(oidSHA256) && (len(a.Parameters.FullBytes) == 0 || bytes.Equal(a.Parameters.FullBytes, derNull))
}

func checkOAEPParams(raw []byte) error {
	var p rsaesOAEPParams
	if err := strictDER(raw, &p); err != nil {
		return fmt.Errorf("%w: bad RSAES-OAEP parameters", errCMS)
	}
	// Absent hashFunc or maskGenFunc would mean SHA-1: refused.
	if !isSHA256(p.HashFunc) {
		return fmt.Errorf("%w: OAEP hash is not SHA-256", errCMS)
	}
	var mgfHash pkix.AlgorithmIdentifier
	if !p.MaskGenFunc.Algorithm.Equal(oidMGF1) {
		return fmt.Errorf("%w: OAEP mask generation is not MGF1", errCMS)
	}
	if err := strictDER(p.MaskGenFunc.Parameters.FullBytes, &mgfHash); err != nil || !isSHA256(mgfHash) {
		return fmt.Errorf("%w: MGF1 hash is not SHA-256", errCMS)
	}
	if len(p.PSourceFunc.Algorithm) != 0 {
		var label []byte
		if !p.PSourceFunc.Algorithm.Equal(oidPSpecified) {
			return fmt.Errorf("%w: bad OAEP pSourceFunc", errCMS)
		}
		if err := strictDER(p.PSourceFunc.Parameters.FullBytes, &label); err != nil || len(label) != 0 {
			return fmt.Errorf("%w: OAEP label is not empty", errCMS)
		}
	}
	return nil
}

// parseEnvelopedData strictly parses a CiphertextForRecipient.
func parseEnvelopedData(b []byte) (*envelopedData, error) {
	if len(b) == 0 || len(b) > maxCMSSize {
		return nil, fmt.Errorf("%w: size %d", errCMS, len(b))
	}
	ci, rest, err := readBER(b, 0)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: trailing bytes", errCMS)
	}
	if !ci.is(asn1.ClassUniversal, asn1.TagSequence, true) {
		return nil, fmt.Errorf("%w: ContentInfo is not a SEQUENCE", errCMS)
	}
	f, err := children(ci, 2, 0)
	if err != nil {
		return nil, err
	}
	if err := expectOID(f[0], oidEnvelopedData); err != nil {
		return nil, err
	}
	if !f[1].is(asn1.ClassContextSpecific, 0, true) {
		return nil, fmt.Errorf("%w: ContentInfo content is not [0]", errCMS)
	}
	wrapped, err := children(f[1], 1, 1)
	if err != nil {
		return nil, err
	}
	ed := wrapped[0]
	if !ed.is(asn1.ClassUniversal, asn1.TagSequence, true) {
		return nil, fmt.Errorf("%w: EnvelopedData is not a SEQUENCE", errCMS)
	}
	// Exactly version, recipientInfos, encryptedContentInfo: an
	// originatorInfo or unprotectedAttrs makes the count or a tag wrong.
	f, err = children(ed, 3, 2)
	if err != nil {
		return nil, err
	}
	if err := expectInt(f[0], envelopedDataVersion); err != nil {
		return nil, err
	}
	if !f[1].is(asn1.ClassUniversal, asn1.TagSet, true) {
		return nil, fmt.Errorf("%w: recipientInfos is not a SET", errCMS)
	}
	ris, err := children(f[1], 1, 3)
	if err != nil {
		return nil, err
	}
	if !ris[0].is(asn1.ClassUniversal, asn1.TagSequence, true) {
		return nil, fmt.Errorf("%w: recipient is not a KeyTransRecipientInfo", errCMS)
	}
	var ktri keyTransRecipientInfo
	if err := derLeaf(ris[0], &ktri); err != nil {
		return nil, err
	}
	if ktri.Version != ktriVersion {
		return nil, fmt.Errorf("%w: recipient version %d", errCMS, ktri.Version)
	}
	if ktri.RID.Class != asn1.ClassContextSpecific || ktri.RID.Tag != 0 || ktri.RID.IsCompound || len(ktri.RID.Bytes) == 0 {
		return nil, fmt.Errorf("%w: recipient is not identified by a subject key identifier", errCMS)
	}
	if !ktri.KeyEncryptionAlgorithm.Algorithm.Equal(oidRSAESOAEP) {
		return nil, fmt.Errorf("%w: key encryption is not RSAES-OAEP", errCMS)
	}
	if err := checkOAEPParams(ktri.KeyEncryptionAlgorithm.Parameters.FullBytes); err != nil {
		return nil, err
	}
	if len(ktri.EncryptedKey) == 0 {
		return nil, fmt.Errorf("%w: empty encrypted key", errCMS)
	}

	eci := f[2]
	if !eci.is(asn1.ClassUniversal, asn1.TagSequence, true) {
		return nil, fmt.Errorf("%w: EncryptedContentInfo is not a SEQUENCE", errCMS)
	}
	f, err = children(eci, 3, 3)
	if err != nil {
		return nil, err
	}
	if err := expectOID(f[0], oidData); err != nil {
		return nil, err
	}
	var alg pkix.AlgorithmIdentifier
	if !f[1].is(asn1.ClassUniversal, asn1.TagSequence, true) {
		return nil, fmt.Errorf("%w: content encryption algorithm", errCMS)
	}
	if err := derLeaf(f[1], &alg); err != nil {
		return nil, err
	}
	if !alg.Algorithm.Equal(oidAES256CBC) {
		return nil, fmt.Errorf("%w: content encryption is not AES-256-CBC", errCMS)
	}
	var iv []byte
	if err := strictDER(alg.Parameters.FullBytes, &iv); err != nil || len(iv) != aes.BlockSize {
		return nil, fmt.Errorf("%w: bad IV", errCMS)
	}
	ec := f[2]
	if ec.class != asn1.ClassContextSpecific || ec.tag != 0 {
		return nil, fmt.Errorf("%w: encryptedContent is not [0]", errCMS)
	}
	var ct []byte
	if !ec.constructed {
		ct = bytes.Clone(ec.content)
	} else {
		rest := ec.content
		for len(rest) > 0 {
			c, r, err := readBER(rest, 5)
			if err != nil {
				return nil, err
			}
			if !c.is(asn1.ClassUniversal, asn1.TagOctetString, false) {
				return nil, fmt.Errorf("%w: encryptedContent chunk is not an OCTET STRING", errCMS)
			}
			ct = append(ct, c.content...)
			rest = r
		}
	}
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 || len(ct) > maxRecipientContent {
		return nil, fmt.Errorf("%w: encrypted content of %d bytes", errCMS, len(ct))
	}
	return &envelopedData{encryptedKey: ktri.EncryptedKey, iv: iv, ciphertext: ct}, nil
}

// openEnvelopedData parses b and decrypts its content with priv. The caller
// clears the result.
func openEnvelopedData(b []byte, priv *rsa.PrivateKey) ([]byte, error) {
	ed, err := parseEnvelopedData(b)
	if err != nil {
		return nil, err
	}
	cek, err := rsa.DecryptOAEP(sha256.New(), nil, priv, ed.encryptedKey, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: key transport", errCMS)
	}
	defer clear(cek)
	if len(cek) != 32 {
		return nil, fmt.Errorf("%w: content key of %d bytes", errCMS, len(cek))
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, fmt.Errorf("%w: content key", errCMS)
	}
	pt := make([]byte, len(ed.ciphertext))
	cipher.NewCBCDecrypter(block, ed.iv).CryptBlocks(pt, ed.ciphertext)
	n, ok := pkcs7PadLen(pt)
	if !ok {
		clear(pt)
		return nil, fmt.Errorf("%w: bad padding", errCMS)
	}
	out := bytes.Clone(pt[:len(pt)-n])
	clear(pt)
	return out, nil
}

// pkcs7PadLen checks PKCS#7 padding for 16-byte blocks strictly and in time
// independent of the padding value, and returns the padding length.
func pkcs7PadLen(b []byte) (int, bool) {
	if len(b) == 0 || len(b)%aes.BlockSize != 0 {
		return 0, false
	}
	last := b[len(b)-1]
	n := int(last)
	good := subtle.ConstantTimeLessOrEq(1, n) & subtle.ConstantTimeLessOrEq(n, aes.BlockSize)
	m := subtle.ConstantTimeSelect(good, n, aes.BlockSize) // keeps the bound below in range
	tail := b[len(b)-aes.BlockSize:]
	for i := range aes.BlockSize {
		// Bytes within the padding must equal last.
		inPad := subtle.ConstantTimeLessOrEq(aes.BlockSize-m, i)
		eq := subtle.ConstantTimeByteEq(tail[i], last)
		good &= eq | (inPad ^ 1)
	}
	return n, good == 1
}
