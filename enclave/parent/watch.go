package parent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/enclave"
	"github.com/ethkeygen/ethkeygen/store"
)

// WatchCustodian is what Watch needs of custody: Load's claims, and the
// keys assigned to a signer. *custody.Custodian satisfies it.
type WatchCustodian interface {
	Custodian
	Assigned(ctx context.Context, signer string) ([]string, error)
}

var _ WatchCustodian = (*custody.Custodian)(nil)

// WatchConfig configures Watch.
type WatchConfig struct {
	// Signer is the enclave's signer name: the keys assigned to it
	// (ethkeygen assign --signer NAME) are loaded. Required.
	Signer string
	// Dial opens a connection to the enclave for one load request.
	// Required.
	Dial func(ctx context.Context) (io.ReadWriteCloser, error)
	// Request fills the rest of each load request: region, credentials
	// (fetched again for every batch: the instance role's expire) and the
	// genesis validators root. Its Pubkeys and Signer are Watch's.
	// Required.
	Request func(ctx context.Context) (Request, error)
	// Interval between polls of the ledger (DefaultWatchInterval if 0).
	Interval time.Duration
	// MaxBackoff bounds the wait after failures (DefaultMaxBackoff if 0).
	MaxBackoff time.Duration
	// Batch is the most keys sent in one load request (DefaultWatchBatch if
	// 0, at most enclave.MaxRecords).
	Batch int
	// Logger receives JSON-able progress logs; nil discards them.
	Logger *slog.Logger
	// Passes, if set, receives a report after every poll (tests, metrics).
	// Watch blocks on it: read it or leave it nil.
	Passes chan<- Pass
}

// Defaults of WatchConfig.
const (
	DefaultWatchInterval = 30 * time.Second
	DefaultMaxBackoff    = 10 * time.Minute
	DefaultWatchBatch    = 100
)

// Pass reports one poll of Watch.
type Pass struct {
	Assigned []string // keys assigned to the signer and not live on it when the poll began
	Loaded   []string // keys this poll loaded
	Held     []string // keys left out this poll: refused before, sitting out polls
	Refused  []string // keys the enclave or custody refused this poll (retried later, with backoff)
	Err      error    // a failure that ended the poll early (the store, the connection): retried with backoff
}

// ErrInterrupted reports a Watch stopped while a load request was in
// flight: its keys may or may not be live (see ErrUncertain).
var ErrInterrupted = errors.New("parent: watch interrupted during a load")

// Watch loads the keys assigned to cfg.Signer as they appear, until ctx
// ends: every Interval it asks custody for the keys assigned to the signer
// and not live on it, and sends them to the enclave in batches with Load
// (custody claims each key before it is sent, so a key is never claimed
// twice, whatever else runs). A batch the enclave or custody refuses is
// sent again key by key, and a key refused alone sits out a growing number
// of polls (2, 4, 8, ... up to MaxBackoff / Interval) so that one bad key
// does not stop the others. Failures of the store, the
// credentials or the connection end the poll and the next one waits with
// the same backoff. Watch returns nil when ctx ends between loads, and an
// error wrapping ErrInterrupted when it ends during one.
func Watch(ctx context.Context, cust WatchCustodian, cfg WatchConfig) error {
	if cfg.Signer == "" || cfg.Dial == nil || cfg.Request == nil || cust == nil {
		return errors.New("parent: Watch needs a custodian, a signer name, Dial and Request")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultWatchInterval
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.MaxBackoff < cfg.Interval {
		cfg.MaxBackoff = cfg.Interval
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultWatchBatch
	}
	cfg.Batch = min(cfg.Batch, enclave.MaxRecords)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &watcher{cust: cust, cfg: cfg, log: log.With(slog.String("signer", cfg.Signer)), held: map[string]*hold{}}
	w.log.Info("watching for assigned keys", slog.Duration("interval", cfg.Interval), slog.Int("batch", cfg.Batch))
	wait := time.Duration(0)
	for {
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				w.log.Info("stopped")
				return nil
			case <-t.C:
			}
		}
		p := w.pass(ctx)
		if errors.Is(p.Err, ErrInterrupted) {
			return p.Err
		}
		if ctx.Err() != nil {
			w.log.Info("stopped")
			return nil
		}
		wait = cfg.Interval
		if p.Err != nil {
			w.failures++
			wait = backoff(cfg.Interval, cfg.MaxBackoff, w.failures)
			w.log.Warn("poll failed; retrying", slog.String("error", p.Err.Error()), slog.Int("failures", w.failures), slog.Duration("retry_in", wait))
		} else {
			w.failures = 0
		}
		if cfg.Passes != nil {
			select {
			case cfg.Passes <- p:
			case <-ctx.Done():
			}
		}
	}
}

// hold counts the polls a refused key sits out.
type hold struct {
	skip     int // polls left to sit out
	refusals int
}

type watcher struct {
	cust     WatchCustodian
	cfg      WatchConfig
	log      *slog.Logger
	held     map[string]*hold
	failures int
}

// holdPolls is how many polls a key refused n times sits out: 2^n, at
// most maxPolls (MaxBackoff / Interval), at least 1.
func holdPolls(n, maxPolls int) int {
	maxPolls = max(maxPolls, 1)
	if n >= 30 {
		return maxPolls
	}
	return min(1<<n, maxPolls)
}

func backoff(base, maxWait time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < maxWait; i++ {
		d *= 2
	}
	return min(d, maxWait)
}

// pass is one poll: read the assigned keys, load the ones not held back.
func (w *watcher) pass(ctx context.Context) Pass {
	var p Pass
	assigned, err := w.cust.Assigned(ctx, w.cfg.Signer)
	if err != nil {
		p.Err = err
		return p
	}
	p.Assigned = assigned
	var todo []string
	current := map[string]bool{}
	for _, pk := range assigned {
		current[pk] = true
		if h := w.held[pk]; h != nil && h.skip > 0 {
			h.skip--
			p.Held = append(p.Held, pk)
			continue
		}
		todo = append(todo, pk)
	}
	for pk := range w.held {
		if !current[pk] { // loaded, reassigned or unassigned since: forget it
			delete(w.held, pk)
		}
	}
	w.log.Debug("poll", slog.Int("assigned", len(assigned)), slog.Int("to_load", len(todo)), slog.Int("held", len(p.Held)))
	for len(todo) > 0 && ctx.Err() == nil {
		n := min(len(todo), w.cfg.Batch)
		batch := todo[:n]
		todo = todo[n:]
		err := w.load(ctx, batch)
		switch {
		case err == nil:
			p.Loaded = append(p.Loaded, batch...)
			continue
		case !refusal(err):
			p.Err = err
			return p
		case len(batch) == 1:
			p.Refused = append(p.Refused, w.refuse(batch[0], err)...)
			continue
		}
		// Find the keys that fail: one at a time.
		w.log.Warn("batch refused; loading its keys one by one", slog.Int("keys", len(batch)), slog.String("error", err.Error()))
		for _, pk := range batch {
			if ctx.Err() != nil {
				break
			}
			switch err := w.load(ctx, []string{pk}); {
			case err == nil:
				p.Loaded = append(p.Loaded, pk)
			case refusal(err):
				p.Refused = append(p.Refused, w.refuse(pk, err)...)
			default:
				p.Err = err
				return p
			}
		}
	}
	if len(p.Loaded) > 0 || len(p.Refused) > 0 {
		w.log.Info("poll done", slog.Int("assigned", len(assigned)), slog.Int("loaded", len(p.Loaded)),
			slog.Int("refused", len(p.Refused)), slog.Int("held", len(p.Held)))
	}
	return p
}

func (w *watcher) refuse(pk string, err error) []string {
	h := w.held[pk]
	if h == nil {
		h = &hold{}
		w.held[pk] = h
	}
	h.refusals++
	h.skip = holdPolls(h.refusals, int(w.cfg.MaxBackoff/w.cfg.Interval))
	w.log.Warn("key refused; retrying later", slog.String("pubkey", pk), slog.String("error", err.Error()),
		slog.Int("refusals", h.refusals), slog.Int("polls_held", h.skip))
	return []string{pk}
}

// refusal reports an error about the keys (the enclave or custody said no),
// as opposed to a failure of the store, the credentials or the connection.
func refusal(err error) bool {
	for _, e := range []error{enclave.ErrRefused, custody.ErrState, custody.ErrClaimed, custody.ErrAssigned,
		custody.ErrForged, custody.ErrNoHistory, custody.ErrRequest, store.ErrNotFound, store.ErrInvalid} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// load sends one batch. The connection is closed when ctx ends, so that a
// signal stops a load in flight at once; Load then keeps the claims if the
// request was sent (ErrUncertain), and Watch reports ErrInterrupted.
func (w *watcher) load(ctx context.Context, batch []string) error {
	req, err := w.cfg.Request(ctx)
	if err != nil {
		return fmt.Errorf("parent: preparing the load request: %w", err)
	}
	req.Pubkeys, req.Signer, req.Takeover, req.NoSlashingHistory = batch, w.cfg.Signer, false, false
	conn, err := w.cfg.Dial(ctx)
	if err != nil {
		return fmt.Errorf("parent: connecting to the enclave: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	w.log.Info("loading", slog.Int("keys", len(batch)), slog.String("first", batch[0]))
	res, err := Load(ctx, conn, w.cust, req, w.log)
	if ctx.Err() != nil && err != nil {
		return fmt.Errorf("%w: %d keys: %w", ErrInterrupted, len(batch), err)
	}
	if err != nil {
		return err
	}
	w.log.Info("loaded", slog.Int("keys", len(res.Keys)))
	return nil
}

// WatchExitCode is the exit status of a parent -watch that Watch ended
// with err: 0 stopped between loads, 130 interrupted during one, 1 any
// other failure.
func WatchExitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrInterrupted):
		return 130
	}
	return 1
}
