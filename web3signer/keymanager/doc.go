// Package keymanager is a client of the standard Ethereum Keymanager API
// (ethereum/keymanager-APIs), the local keystore endpoints that Web3Signer
// serves with --key-manager-api-enabled and that validator clients
// (Lodestar, Teku, Lighthouse, Prysm, Nimbus) serve too:
//
//	GET    /eth/v1/keystores  list the keys the signer holds      [Client.List]
//	POST   /eth/v1/keystores  import keystores with their         [Client.Import]
//	                          passwords and an EIP-3076 interchange
//	DELETE /eth/v1/keystores  remove keys; the answer carries     [Client.Delete]
//	                          their slashing-protection interchange
//
// It is a narrow I/O package: it builds the request, sends it, and returns
// the server's per-key answers typed ([Imported], [Duplicate], [Failed];
// [Deleted], [NotActive], [NotFound], [DeleteFailed]) in the order of the
// request. It makes no decision about what an answer means for a key's
// lifecycle: a "duplicate" is reported as such, and the caller (custody)
// decides that it is not a fresh load.
//
// Every failure is one line and wraps one of [ErrUnavailable] (the server
// is down or did not answer in time), [ErrUnauthorized] (401: the token was
// refused), [ErrForbidden] (403), [ErrServer] (another non-2xx answer) or
// [ErrMalformed] (a 2xx answer that is not what the API specifies).
//
// # Security
//
//   - The bearer token lives in a [Token], which redacts itself in fmt,
//     JSON and slog; it is read from a file ([ReadTokenFile]) and sent only
//     in the Authorization header. No error quotes it.
//   - Request bodies hold keystore passwords: they are built into one
//     buffer that is cleared once the request is sent. The caller keeps
//     (and clears) the passwords it passed.
//   - Plain http is accepted only to a loopback address; any other host
//     needs https. [WithCAFile] pins the server's CA: the system roots are
//     then not trusted. Redirects are never followed, so the token goes
//     only to the URL given.
//   - [Client.Import] requires a slashing-protection interchange: this
//     client never loads a key without one (an empty one, from
//     web3signer.EmptyInterchange, for keys that never signed).
//   - The package never logs.
package keymanager
