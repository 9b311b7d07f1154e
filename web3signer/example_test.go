package web3signer_test

import (
	"fmt"

	"github.com/ethkeygen/ethkeygen/web3signer"
)

func ExampleEmptyInterchange() {
	const mainnetRoot = "0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95"
	pubkey := "0xa99a76ed7796f7be22d5b7e85deeb7c5677e88e511e0b337618f8c4eb61349b4bf2d153f649f7b53359fe8b94a38e44c"
	doc, err := web3signer.EmptyInterchange(mainnetRoot, []string{pubkey})
	if err != nil {
		panic(err)
	}
	fmt.Print(string(doc))
	// Output:
	// {"metadata":{"interchange_format_version":"5","genesis_validators_root":"0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95"},"data":[{"pubkey":"0xa99a76ed7796f7be22d5b7e85deeb7c5677e88e511e0b337618f8c4eb61349b4bf2d153f649f7b53359fe8b94a38e44c","signed_blocks":[],"signed_attestations":[]}]}
}
