package keygen

import (
	"crypto/sha256"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"

	"github.com/tyler-smith/go-bip39"
	"github.com/tyler-smith/go-bip39/wordlists"
	"golang.org/x/text/unicode/norm"
)

// Language is a BIP-39 wordlist.
type Language string

// The wordlists go-bip39 ships, and Portuguese (wordlists/portuguese.txt).
const (
	English            Language = "english"
	ChineseSimplified  Language = "chinese_simplified"
	ChineseTraditional Language = "chinese_traditional"
	Czech              Language = "czech"
	French             Language = "french"
	Italian            Language = "italian"
	Japanese           Language = "japanese"
	Korean             Language = "korean"
	Spanish            Language = "spanish"
	Portuguese         Language = "portuguese"
)

// Languages lists every supported wordlist, English first (it is tried first
// when a mnemonic is detected).
var Languages = []Language{English, ChineseSimplified, ChineseTraditional, Czech, French, Italian, Japanese, Korean, Portuguese, Spanish}

// portugueseList is the BIP-39 Portuguese wordlist; see wordlists/SOURCE.md.
//
//go:embed wordlists/portuguese.txt
var portugueseList string

var wordlistByLanguage = map[Language][]string{
	English:            wordlists.English,
	ChineseSimplified:  wordlists.ChineseSimplified,
	ChineseTraditional: wordlists.ChineseTraditional,
	Czech:              wordlists.Czech,
	French:             wordlists.French,
	Italian:            wordlists.Italian,
	Japanese:           wordlists.Japanese,
	Korean:             wordlists.Korean,
	Spanish:            wordlists.Spanish,
	Portuguese:         strings.Fields(portugueseList),
}

// wordIndex maps NFKD-normalised words to their index, per language. The
// wordlists of go-bip39 are NFC for some languages; BIP-39 compares NFKD.
var wordIndex = func() map[Language]map[string]int {
	m := make(map[Language]map[string]int, len(wordlistByLanguage))
	for lang, list := range wordlistByLanguage {
		idx := make(map[string]int, len(list))
		for i, w := range list {
			idx[norm.NFKD.String(w)] = i
		}
		m[lang] = idx
	}
	return m
}()

// abbrevIndex maps the first four characters of each NFKC-normalised word to
// the word's index (the first such word where a list repeats a prefix), per
// language: BIP-39 makes four letters enough to tell the words apart, and
// ethstaker-deposit-cli accepts mnemonics typed that way.
var abbrevIndex = func() map[Language]map[string]int {
	m := make(map[Language]map[string]int, len(wordlistByLanguage))
	for lang, list := range wordlistByLanguage {
		idx := make(map[string]int, len(list))
		for i, w := range list {
			a := abbreviate(w)
			if _, dup := idx[a]; !dup {
				idx[a] = i
			}
		}
		m[lang] = idx
	}
	return m
}()

// abbreviate is a word's first four characters after NFKC normalisation.
func abbreviate(w string) string {
	r := []rune(norm.NFKC.String(w))
	if len(r) > 4 {
		r = r[:4]
	}
	return string(r)
}

// Errors returned by mnemonic handling.
var (
	ErrMnemonicLength    = errors.New("keygen: a mnemonic has 12, 15, 18, 21 or 24 words")
	ErrMnemonicWord      = errors.New("keygen: mnemonic word not in any BIP-39 wordlist")
	ErrMnemonicChecksum  = errors.New("keygen: mnemonic checksum is wrong (a word is mistyped or out of order)")
	ErrLanguage          = errors.New("keygen: unknown BIP-39 language")
	ErrMnemonicAmbiguous = errors.New("keygen: the abbreviated mnemonic is valid in more than one language: type the words in full")
)

// MnemonicWords is the length of mnemonics NewMnemonic creates: 24 words,
// 256 bits of entropy, as staking-deposit-cli does.
const MnemonicWords = 24

// Mnemonic is a checked BIP-39 mnemonic. It redacts itself when formatted.
type Mnemonic struct {
	redacted
	phrase *Bytes // NFKD-normalised words joined by single spaces
	lang   Language
}

// NewMnemonic creates a 24-word mnemonic in lang from 32 bytes read from
// random (use crypto/rand.Reader).
func NewMnemonic(random io.Reader, lang Language) (*Mnemonic, error) {
	if _, ok := wordlistByLanguage[lang]; !ok {
		return nil, fmt.Errorf("%w %q", ErrLanguage, lang)
	}
	entropy := make([]byte, 32)
	defer Wipe(entropy)
	if _, err := io.ReadFull(random, entropy); err != nil {
		return nil, fmt.Errorf("keygen: reading entropy: %w", err)
	}
	return MnemonicFromEntropy(entropy, lang)
}

// MnemonicFromEntropy encodes 16 to 32 bytes of entropy (a multiple of 4) as
// a mnemonic in lang.
func MnemonicFromEntropy(entropy []byte, lang Language) (*Mnemonic, error) {
	list, ok := wordlistByLanguage[lang]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrLanguage, lang)
	}
	n := len(entropy)
	if n < 16 || n > 32 || n%4 != 0 {
		return nil, fmt.Errorf("keygen: entropy must be 16 to 32 bytes in steps of 4, got %d", n)
	}
	sum := sha256.Sum256(entropy)
	defer Wipe(sum[:])
	bits := n*8 + n/4 // entropy plus checksum bits
	buf := make([]byte, n+1)
	defer Wipe(buf)
	copy(buf, entropy)
	buf[n] = sum[0]
	var phrase []byte
	for w := 0; w < bits/11; w++ {
		idx := 0
		for b := 0; b < 11; b++ {
			pos := w*11 + b
			bit := (buf[pos/8] >> (7 - uint(pos%8))) & 1
			idx = idx<<1 | int(bit)
		}
		if w > 0 {
			phrase = append(phrase, ' ')
		}
		phrase = append(phrase, norm.NFKD.String(list[idx])...)
	}
	return &Mnemonic{phrase: NewBytes(phrase), lang: lang}, nil
}

// ParseMnemonic checks a mnemonic typed or read from a file: any whitespace
// (including the ideographic space of Japanese mnemonics) separates words,
// case is folded, words are NFKD-normalised, the language is detected and the
// checksum is verified. As in ethstaker-deposit-cli, words may be abbreviated
// to their first four letters (compared after NFKC normalisation); the
// mnemonic is then the full words of the one language in which the
// abbreviations carry a valid checksum. Errors name the position of the first
// unknown word but never the word itself.
func ParseMnemonic(s string) (*Mnemonic, error) {
	lower := strings.ToLower(s)
	words := strings.FieldsFunc(norm.NFKD.String(lower), unicode.IsSpace)
	defer wipeWords(words)
	switch len(words) {
	case 12, 15, 18, 21, 24:
	default:
		return nil, fmt.Errorf("%w, got %d", ErrMnemonicLength, len(words))
	}
	bestLang, bestMissing := Language(""), -1
	checksumFailed := false
	indices := make([]int, len(words))
	defer clear(indices)
	for _, lang := range Languages {
		idx := wordIndex[lang]
		missing := -1
		for i, w := range words {
			v, ok := idx[w]
			if !ok {
				missing = i
				break
			}
			indices[i] = v
		}
		if missing >= 0 {
			if missing > bestMissing {
				bestLang, bestMissing = lang, missing
			}
			continue
		}
		if !checksumOK(indices) {
			checksumFailed = true
			continue // Chinese lists overlap: another language may fit.
		}
		return &Mnemonic{phrase: NewBytes([]byte(strings.Join(words, " "))), lang: lang}, nil
	}
	if m, err := parseAbbreviated(lower); m != nil || err != nil {
		return m, err
	}
	if checksumFailed {
		return nil, ErrMnemonicChecksum
	}
	// The position, not the word: even a mistyped word is part of a secret.
	return nil, fmt.Errorf("%w: word %d of %d is not in the %s list", ErrMnemonicWord, bestMissing+1, len(words), bestLang)
}

// parseAbbreviated reads words by their first four letters. It returns
// (nil, nil) when no language has every abbreviation with a valid checksum.
func parseAbbreviated(lower string) (*Mnemonic, error) {
	fields := strings.FieldsFunc(lower, unicode.IsSpace)
	defer wipeWords(fields)
	abbrevs := make([]string, len(fields))
	defer wipeWords(abbrevs)
	for i, w := range fields {
		abbrevs[i] = abbreviate(w)
	}
	var found *Mnemonic
	indices := make([]int, len(abbrevs))
	defer clear(indices)
	for _, lang := range Languages {
		idx := abbrevIndex[lang]
		ok := true
		for i, a := range abbrevs {
			v, in := idx[a]
			if !in {
				ok = false
				break
			}
			indices[i] = v
		}
		if !ok || !checksumOK(indices) {
			continue
		}
		list := wordlistByLanguage[lang]
		full := make([]string, len(indices))
		for i, v := range indices {
			full[i] = norm.NFKD.String(list[v])
		}
		phrase := strings.Join(full, " ")
		if found != nil {
			if found.UnsafeString() == phrase {
				continue // the same words in two lists (Chinese): the same seed
			}
			found.Destroy()
			return nil, ErrMnemonicAmbiguous
		}
		found = &Mnemonic{phrase: NewBytes([]byte(phrase)), lang: lang}
	}
	return found, nil
}

func wipeWords(words []string) {
	for i := range words {
		words[i] = ""
	}
}

// checksumOK checks the BIP-39 checksum of a mnemonic given as word indices.
func checksumOK(indices []int) bool {
	bits := len(indices) * 11
	csBits := bits / 33
	buf := make([]byte, (bits+7)/8)
	defer Wipe(buf)
	for w, v := range indices {
		for b := 0; b < 11; b++ {
			if v>>(10-uint(b))&1 == 1 {
				pos := w*11 + b
				buf[pos/8] |= 1 << (7 - uint(pos%8))
			}
		}
	}
	entLen := (bits - csBits) / 8
	sum := sha256.Sum256(buf[:entLen])
	defer Wipe(sum[:])
	want := sum[0] >> (8 - uint(csBits))
	got := buf[entLen] >> (8 - uint(csBits))
	return want == got
}

// Language is the wordlist the mnemonic uses.
func (m *Mnemonic) Language() Language { return m.lang }

// Words is the number of words.
func (m *Mnemonic) Words() int { return strings.Count(string(m.phrase.UnsafeBytes()), " ") + 1 }

// UnsafeString returns the normalised phrase, words separated by one space.
func (m *Mnemonic) UnsafeString() string { return string(m.phrase.UnsafeBytes()) }

// Seed computes the 64-byte BIP-39 seed with an optional passphrase (NFKD
// normalised, as BIP-39 requires).
func (m *Mnemonic) Seed(passphrase string) *Bytes {
	return NewBytes(bip39.NewSeed(m.UnsafeString(), norm.NFKD.String(passphrase)))
}

// Destroy clears the phrase.
func (m *Mnemonic) Destroy() {
	if m != nil {
		m.phrase.Destroy()
	}
}
