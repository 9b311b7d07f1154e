// Package beacon is a narrow client of the standard Ethereum beacon node API
// (https://ethereum.github.io/beacon-APIs): it looks up validators by
// pubkey or index (GET /eth/v1/beacon/states/head/validators) and submits
// signed voluntary exits and BLS-to-execution changes to the node's
// operation pools (POST /eth/v1/beacon/pool/voluntary_exits and
// /eth/v1/beacon/pool/bls_to_execution_changes).
//
// It only moves public data: the messages are signed elsewhere (package
// ops), and nothing here holds a key. Responses are read through a size
// limit and parsed strictly: every field the client uses must be present
// and canonical (numbers as decimal strings, byte strings as 0x hex), and a
// reply that names another validator than the one asked for is an error.
// Fields it does not use are ignored, so that nodes that add fields keep
// working. Every call takes a context.
package beacon
