package handler_test

// Helpers of every test file here, the fuzz targets' included (this file
// has no build constraint: see FUZZ_TAG in scripts/test.sh).

import (
	"testing"

	"github.com/ethkeygen/ethkeygen/depositdata"
)

// testAddress is EIP-55's own example address (its checksum from the EIP's
// test cases), otherAddress another of them.
const (
	testAddress  = "0x0f51bb10119727a7e5eA3538074fb341F56B09Ad"
	otherAddress = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
)

func mustAddress(t testing.TB, s string) depositdata.Address {
	t.Helper()
	a, err := depositdata.ParseAddress(s, false)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
