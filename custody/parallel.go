package custody

import (
	"context"
	"runtime"
	"sync"
)

// ScryptWorkerMemory is what one scrypt run with n=262144, r=8 needs
// (128·r·n bytes), plus headroom for the rest of a worker.
const ScryptWorkerMemory = 128*8*(1<<18) + 16<<20

// DefaultMaxMemory bounds the memory of key generation when the caller sets
// none: enough for 8 scrypt workers.
const DefaultMaxMemory int64 = 8 * ScryptWorkerMemory

// Workers is how many validators to build at once: one per core, as many as
// fit into maxMemory when each needs perWorker bytes, at least one. A
// non-positive maxMemory means DefaultMaxMemory.
func Workers(maxMemory, perWorker int64) int {
	if maxMemory <= 0 {
		maxMemory = DefaultMaxMemory
	}
	n := runtime.GOMAXPROCS(0)
	if perWorker > 0 {
		if fit := int(maxMemory / perWorker); fit < n {
			n = fit
		}
	}
	return max(n, 1)
}

// forEach runs fn(i) for i in [0, n) on `workers` goroutines. It stops
// handing out work at the first error (or when ctx ends) and returns that
// error after the running calls finish.
func forEach(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(ctx, i); err != nil {
					once.Do(func() { firstErr = err; cancel() })
				}
			}
		}()
	}
feed:
	for i := 0; i < n; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}
