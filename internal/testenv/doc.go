// Package testenv connects tests to the local servers that `make test`
// starts: DynamoDB Local, local-kms, the Lambda Runtime Interface Emulator
// binary, Lodestar (its CLI and a `lodestar dev` chain serving the
// Keymanager API) and, where it is installed, cfn-lint.
//
// Each accessor reads one environment variable set by scripts/test.sh. When
// the variable is unset the test is skipped, so `go test ./...` on its own
// runs the unit tests and nothing else. When ETHKEYGEN_REQUIRE_INTEGRATION=1
// (as `make test` and CI set it) a missing variable fails the test instead,
// so an integration test can never pass by silently skipping.
//
// The package is for tests only: every function takes a testing.TB.
//
// # Security
//
// AWSConfig uses fixed dummy credentials and must only ever point at local
// emulators; it never reads the shared AWS config files or the environment's
// credentials, so a test cannot reach a real account by accident.
package testenv
