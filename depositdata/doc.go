// Package depositdata builds and checks Ethereum deposit data: the SSZ
// DepositMessage and DepositData roots, the BLS signature over the deposit
// domain (compute_domain(DOMAIN_DEPOSIT, genesis fork version, zero genesis
// validators root)), withdrawal credentials of type 0x00, 0x01 and 0x02, and
// the deposit_data JSON file that the Staking Launchpad accepts, written byte
// for byte as staking-deposit-cli and ethstaker-deposit-cli write it.
//
// Network also carries what signed exits and BLS-to-execution changes
// (package ops) and slashing-protection interchanges need: the Capella fork
// version and the genesis validators root of mainnet, sepolia, holesky and
// hoodi (sources in testdata/networks.json), and of devnets through
// WithChainRoots.
//
// The package is pure: no I/O, no logging. SSZ roots and signature
// verification come from zrnt (protolambda), an implementation independent
// of the BLS library that signs (herumi, through go-eth2-types), so every
// deposit is checked by a second implementation before it leaves the
// generator.
package depositdata
