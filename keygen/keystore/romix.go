package keystore

import (
	"context"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/binary"
	"math/bits"
)

// cancelEvery is how many ROMix iterations run between two checks of the
// context: at r=8 about a millisecond of work.
const cancelEvery = 256

// scryptContext is scrypt as RFC 7914 defines it (section 6), written here
// so that the work stops between blocks when ctx is done:
// golang.org/x/crypto/scrypt has no context. N must be a power of two
// greater than 1 and r, p at least 1 (deriveKey checks the bounds). Its
// output equals x/crypto's and the RFC's test vectors (romix_test.go).
func scryptContext(ctx context.Context, password, salt []byte, N, r, p, keyLen int) ([]byte, error) {
	b, err := pbkdf2.Key(sha256.New, string(password), salt, 1, p*128*r)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	words := 32 * r
	x := make([]uint32, words)
	y := make([]uint32, words)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	v := make([]uint32, words*N)
	filled := 0 // blocks of v written: only those are cleared (clearing all would fault in pages never used)
	defer func() { clear(v[:filled*words]); clear(x); clear(y) }()
	for i := 0; i < p; i++ {
		blk := b[i*128*r : (i+1)*128*r]
		for j := range x {
			x[j] = binary.LittleEndian.Uint32(blk[4*j:])
		}
		// ROMix: V_i = X, X = BlockMix(X), N times; then N times
		// X = BlockMix(X xor V_j) with j = Integerify(X) mod N.
		for n := 0; n < N; n++ {
			if n%cancelEvery == 0 {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
			}
			copy(v[n*words:], x)
			filled = max(filled, n+1)
			blockMix(x, y, r)
		}
		for n := 0; n < N; n++ {
			if n%cancelEvery == 0 {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
			}
			j := int(x[(2*r-1)*16] & uint32(N-1))
			vj := v[j*words : (j+1)*words]
			for k := range x {
				x[k] ^= vj[k]
			}
			blockMix(x, y, r)
		}
		for j, w := range x {
			binary.LittleEndian.PutUint32(blk[4*j:], w)
		}
	}
	return pbkdf2.Key(sha256.New, string(password), b, 1, keyLen)
}

// blockMix is scryptBlockMix (RFC 7914 section 4) on the 2r 64-byte blocks
// of b, as little-endian words; y is scratch of the same size.
func blockMix(b, y []uint32, r int) {
	var x [16]uint32
	copy(x[:], b[(2*r-1)*16:])
	for i := 0; i < 2*r; i++ {
		for k := range x {
			x[k] ^= b[i*16+k]
		}
		salsa208(&x)
		copy(y[i*16:], x[:])
	}
	// Even blocks first, then odd ones.
	for i := 0; i < r; i++ {
		copy(b[i*16:(i+1)*16], y[2*i*16:(2*i+1)*16])
		copy(b[(r+i)*16:(r+i+1)*16], y[(2*i+1)*16:(2*i+2)*16])
	}
}

// salsa208 is the Salsa20/8 core (RFC 7914 section 3): four double rounds
// (a column round and a row round each), then the input added word by word.
// The state is in local variables, which the compiler keeps in registers.
func salsa208(b *[16]uint32) {
	x0, x1, x2, x3, x4, x5, x6, x7 := b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]
	x8, x9, x10, x11, x12, x13, x14, x15 := b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
	for i := 0; i < 8; i += 2 {
		x4 ^= bits.RotateLeft32(x0+x12, 7)
		x8 ^= bits.RotateLeft32(x4+x0, 9)
		x12 ^= bits.RotateLeft32(x8+x4, 13)
		x0 ^= bits.RotateLeft32(x12+x8, 18)
		x9 ^= bits.RotateLeft32(x5+x1, 7)
		x13 ^= bits.RotateLeft32(x9+x5, 9)
		x1 ^= bits.RotateLeft32(x13+x9, 13)
		x5 ^= bits.RotateLeft32(x1+x13, 18)
		x14 ^= bits.RotateLeft32(x10+x6, 7)
		x2 ^= bits.RotateLeft32(x14+x10, 9)
		x6 ^= bits.RotateLeft32(x2+x14, 13)
		x10 ^= bits.RotateLeft32(x6+x2, 18)
		x3 ^= bits.RotateLeft32(x15+x11, 7)
		x7 ^= bits.RotateLeft32(x3+x15, 9)
		x11 ^= bits.RotateLeft32(x7+x3, 13)
		x15 ^= bits.RotateLeft32(x11+x7, 18)

		x1 ^= bits.RotateLeft32(x0+x3, 7)
		x2 ^= bits.RotateLeft32(x1+x0, 9)
		x3 ^= bits.RotateLeft32(x2+x1, 13)
		x0 ^= bits.RotateLeft32(x3+x2, 18)
		x6 ^= bits.RotateLeft32(x5+x4, 7)
		x7 ^= bits.RotateLeft32(x6+x5, 9)
		x4 ^= bits.RotateLeft32(x7+x6, 13)
		x5 ^= bits.RotateLeft32(x4+x7, 18)
		x11 ^= bits.RotateLeft32(x10+x9, 7)
		x8 ^= bits.RotateLeft32(x11+x10, 9)
		x9 ^= bits.RotateLeft32(x8+x11, 13)
		x10 ^= bits.RotateLeft32(x9+x8, 18)
		x12 ^= bits.RotateLeft32(x15+x14, 7)
		x13 ^= bits.RotateLeft32(x12+x15, 9)
		x14 ^= bits.RotateLeft32(x13+x12, 13)
		x15 ^= bits.RotateLeft32(x14+x13, 18)
	}
	b[0] += x0
	b[1] += x1
	b[2] += x2
	b[3] += x3
	b[4] += x4
	b[5] += x5
	b[6] += x6
	b[7] += x7
	b[8] += x8
	b[9] += x9
	b[10] += x10
	b[11] += x11
	b[12] += x12
	b[13] += x13
	b[14] += x14
	b[15] += x15
}
