//go:build !crashtest

package main

import (
	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/store"
)

// crashPoint marks a point of `generate` where the crash-consistency tests
// (tests/crash) kill the process. Outside a build with -tags crashtest it
// does nothing; see crashpoint_crashtest.go.
func crashPoint(string) {}

// crashLedger returns l unchanged outside a crashtest build.
func crashLedger(l store.Ledger) store.Ledger { return l }

// crashWrap returns st and s unchanged outside a crashtest build.
func crashWrap(st store.Store, s envelope.Sealer) (store.Store, envelope.Sealer) { return st, s }
