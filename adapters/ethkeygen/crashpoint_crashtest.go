//go:build crashtest

package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/store"
)

// This file exists only in binaries built with -tags crashtest, for the
// crash-consistency tests in tests/crash. With ETHKEYGEN_CRASH_AT=PHASE:N
// the process SIGKILLs itself at the N-th (1-based) occurrence of PHASE:
//
//	derive  a validator was derived and its secret built, before sealing
//	seal    a secret was sealed, before it is stored
//	store   a store write (Put) returned successfully
//	export   the validators are stored, before their export starts
//	claim    an export claimed keys in the ledger (ClaimForExport returned)
//	freeze   an export's members were frozen (SealExport returned)
//	claimed  the export is frozen, before its file is written
//	written  the deposit file was written
//
// Just before the kill it writes "crashpoint PHASE:N" on stderr, so a test
// can tell a planned kill from a crash.

var crash = func() (c struct {
	phase string
	n     int
}) {
	v := os.Getenv("ETHKEYGEN_CRASH_AT")
	if v == "" {
		return c
	}
	phase, n, ok := strings.Cut(v, ":")
	k, err := strconv.Atoi(n)
	if !ok || err != nil || k < 1 {
		fmt.Fprintf(os.Stderr, "ETHKEYGEN_CRASH_AT=%q: want PHASE:N\n", v)
		os.Exit(3)
	}
	c.phase, c.n = phase, k
	return c
}()

var (
	crashMu     sync.Mutex
	crashCounts = map[string]int{}
)

func crashPoint(phase string) {
	if crash.phase != phase {
		return
	}
	crashMu.Lock()
	crashCounts[phase]++
	hit := crashCounts[phase] == crash.n
	if hit {
		// Hold the lock: no other goroutine passes a crash point while
		// the process dies.
		fmt.Fprintf(os.Stderr, "crashpoint %s:%d\n", phase, crash.n)
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	crashMu.Unlock()
}

// crashWrap puts the derive and seal points around the sealer (Seal is the
// step right after a validator is derived and verified) and the store point
// after each successful Put.
func crashWrap(st store.Store, s envelope.Sealer) (store.Store, envelope.Sealer) {
	return crashStore{st}, crashSealer{s}
}

type crashSealer struct{ envelope.Sealer }

func (c crashSealer) Seal(ctx context.Context, plaintext []byte, ec envelope.Context) ([]byte, error) {
	crashPoint("derive")
	b, err := c.Sealer.Seal(ctx, plaintext, ec)
	if err == nil {
		crashPoint("seal")
	}
	return b, err
}

type crashStore struct{ store.Store }

func (c crashStore) Put(ctx context.Context, recs ...*store.Record) error {
	err := c.Store.Put(ctx, recs...)
	if err == nil {
		crashPoint("store")
	}
	return err
}

// crashLedger puts the claim and freeze points after the ledger's export
// writes.
func crashLedger(l store.Ledger) store.Ledger { return crashLedgerT{l} }

type crashLedgerT struct{ store.Ledger }

func (c crashLedgerT) ClaimForExport(ctx context.Context, id string, pks []string, at time.Time, by string) ([]string, error) {
	got, err := c.Ledger.ClaimForExport(ctx, id, pks, at, by)
	if err == nil {
		crashPoint("claim")
	}
	return got, err
}

func (c crashLedgerT) SealExport(ctx context.Context, id string, members []string, claims int) error {
	err := c.Ledger.SealExport(ctx, id, members, claims)
	if err == nil {
		crashPoint("freeze")
	}
	return err
}
