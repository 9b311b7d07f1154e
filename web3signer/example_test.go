package web3signer_test

import (
	"errors"
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

// BuildInterchange takes the network's genesis validators root from the
// caller's network table and merges each key's previous history.
func ExampleBuildInterchange() {
	hoodi, _ := web3signer.ParseRoot("0x212f13fc4df078b6cb7db228f1c8307566dcecf900867401a92023d7ba99cb5f")
	pubkey := "0xa99a76ed7796f7be22d5b7e85deeb7c5677e88e511e0b337618f8c4eb61349b4bf2d153f649f7b53359fe8b94a38e44c"
	previous := []byte(`{"metadata":{"interchange_format_version":"5","genesis_validators_root":"0x212f13fc4df078b6cb7db228f1c8307566dcecf900867401a92023d7ba99cb5f"},"data":[{"pubkey":"` + pubkey + `","signed_blocks":[{"slot":"81"}],"signed_attestations":[]}]}`)
	doc, err := web3signer.BuildInterchange(hoodi, []web3signer.KeyHistory{{Pubkey: pubkey, Previous: previous}})
	if err != nil {
		panic(err)
	}
	fmt.Print(string(doc))
	mainnet, _ := web3signer.ParseRoot("0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95")
	_, err = web3signer.BuildInterchange(mainnet, []web3signer.KeyHistory{{Pubkey: pubkey, Previous: previous}})
	fmt.Println(errors.Is(err, web3signer.ErrGenesisRoot))
	// Output:
	// {"metadata":{"interchange_format_version":"5","genesis_validators_root":"0x212f13fc4df078b6cb7db228f1c8307566dcecf900867401a92023d7ba99cb5f"},"data":[{"pubkey":"0xa99a76ed7796f7be22d5b7e85deeb7c5677e88e511e0b337618f8c4eb61349b4bf2d153f649f7b53359fe8b94a38e44c","signed_blocks":[{"slot":"81"}],"signed_attestations":[]}]}
	// true
}
