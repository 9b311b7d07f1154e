package ops_test

import (
	"fmt"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/keygen"
	"github.com/ethkeygen/ethkeygen/ops"
)

// ExampleSignExit signs the exit of validator 1 with the first key of a
// mnemonic, valid from epoch 1234, on mainnet. The output is the
// independent oracle's (testdata/oracle_sister_mainnet_exit.json).
func ExampleSignExit() {
	m, _ := keygen.ParseMnemonic("sister protect peanut hill ready work profit fit wish want small inflict flip member tail between sick setup bright duck morning sell paper worry")
	seed := m.Seed("")
	defer seed.Destroy()
	key, _ := keygen.DeriveKey(seed, keygen.SigningPath(0))
	defer key.Destroy()
	exit, err := ops.SignExit(key, 1, 1234, depositdata.Mainnet)
	if err != nil {
		fmt.Println(err)
		return
	}
	b, _ := ops.MarshalExit(exit)
	fmt.Println(string(b))
	// Output:
	// {"message":{"epoch":"1234","validator_index":"1"},"signature":"0x93306ba0d7d0c33439c84d00d94536a22851f708d3b1f3a198f682b1da07bd449b5238c2b58d94c2c630c7a479de578b1467f6dd7b23c4b4f613dd891528ec3730d4b4b335be71aae8f5f3d9f46ac68a890cb7e97b180e517a648b3501d38be5"}
}
