// Package ops builds and checks the public messages a staker signs after the
// deposit: signed voluntary exits, BLS-to-execution changes (moving 0x00
// credentials to an execution address) and top-up deposits.
//
// Domains follow the consensus specs:
//
//   - a voluntary exit is signed under compute_domain(DOMAIN_VOLUNTARY_EXIT,
//     CAPELLA_FORK_VERSION, genesis_validators_root), valid for every fork
//     from Capella on (EIP-7044: a presigned exit never expires);
//   - a BLS-to-execution change is signed under
//     compute_domain(DOMAIN_BLS_TO_EXECUTION_CHANGE, GENESIS_FORK_VERSION,
//     genesis_validators_root) by the withdrawal key m/12381/3600/i/0,
//     whose public key must hash to the validator's 0x00 credentials;
//   - a top-up is an ordinary deposit (package depositdata) for a pubkey
//     that is already a validator.
//
// SSZ types and hash tree roots are zrnt's (phase0.VoluntaryExit,
// common.BLSToExecutionChange). The files are written as the beacon API
// and ethstaker-deposit-cli write them (numbers as decimal strings), and the
// parsers are strict: unknown or missing fields, non-canonical numbers and
// malformed hex are errors.
//
// The package is pure: no I/O, no logging, no lifecycle rule. Moving a
// key's lifecycle state (exit-signed) is custody's job; the Sign functions
// here are the seam it calls with keys it has opened.
//
// # Security
//
// Every Sign function verifies its output with an implementation
// independent of the signer (zrnt's BLS verification; the signer is the
// herumi library behind keygen) before returning it, and a BLS change is
// refused unless the withdrawal key matches the validator's 0x00
// credentials. Keys are only used through the Signer interface; nothing
// here keeps or copies a secret.
package ops
