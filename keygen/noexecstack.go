package keygen

// The BLS library (herumi/bls-eth-go-binary) ships a static object without a
// .note.GNU-stack section, which makes the linker mark every binary that
// signs with an executable stack (and warn about it). Asking for a
// non-executable stack here applies to every program that imports keygen.

// #cgo LDFLAGS: -Wl,-z,noexecstack
import "C"
