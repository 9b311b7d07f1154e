// Package archtest holds no code: its test checks the import direction the
// project's layout promises (see ../../SECURITY.md and the conventions), by
// reading `go list -deps -json` of the whole module.
package archtest
