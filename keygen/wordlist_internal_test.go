package keygen

import "testing"

// The embedded Portuguese list has 2048 distinct words, unique in their
// first four letters (wordlists/SOURCE.md).
func TestPortugueseList(t *testing.T) {
	list := wordlistByLanguage[Portuguese]
	seen := map[string]bool{}
	for _, w := range list {
		seen[w] = true
	}
	if len(list) != 2048 || len(seen) != 2048 || len(abbrevIndex[Portuguese]) != 2048 || list[0] != "abacate" || list[2047] != "zumbido" {
		t.Fatalf("%d words, %d distinct, %d prefixes", len(list), len(seen), len(abbrevIndex[Portuguese]))
	}
}
