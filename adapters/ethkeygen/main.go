// Command ethkeygen is the operator CLI of ethkeygen: it generates validator
// keys into the secure store (generate), exports Launchpad files, decrypts
// into a Web3Signer key directory in protected compute, and offers the
// staking-deposit-cli style existing-mnemonic flow and file verification.
//
// Every command takes --help. Results go to stdout, everything else (notices,
// progress, errors) to stderr. Errors are one line on stderr, in the user's
// terms (ETHKEYGEN_LOG_LEVEL=debug logs the full wrapped error), and the exit
// status says what happened: 0 success, 1 a failed run, 2 bad usage (an
// unknown flag, a bad value, a missing choice), 130 interrupted (Ctrl-C or
// SIGTERM; the command stops within a second).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/internal/hardening"
)

// env is what a command sees of the outside world; tests substitute it.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	isTerminal     bool // stderr is a terminal: show progress
	log            *slog.Logger

	// status is what an interruption reports: set by the command (resume)
	// and by its progress.
	status runStatus
}

// runStatus is the state of the running command that an interruption
// message names: "interrupted; 3 of 10 stored; re-run with --request-id ID".
type runStatus struct {
	mu          sync.Mutex
	command     string
	requestID   string // set once the command accepted its request (resume hint)
	label       string // what done counts, e.g. "stored"
	done, total int
	reported    bool
}

// resumable records the request id that a re-run resumes: an interruption
// from now on names it.
func (e *env) resumable(requestID string) {
	e.status.mu.Lock()
	defer e.status.mu.Unlock()
	e.status.requestID = requestID
}

// reportInterrupt prints the interruption line once, however many paths
// (the command's return, the watchdog) reach it.
func (e *env) reportInterrupt() {
	st := &e.status
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.reported {
		return
	}
	st.reported = true
	msg := "interrupted"
	if st.requestID != "" {
		label := st.label
		if label == "" {
			label = "stored"
		}
		msg = fmt.Sprintf("interrupted; %d of %d %s; re-run with --request-id %s to finish", st.done, st.total, label, st.requestID)
	}
	fmt.Fprintf(e.stderr, "ethkeygen %s: %s\n", st.command, msg)
}

// newLogger logs to stderr at the level ETHKEYGEN_LOG_LEVEL names (debug,
// info, warn, error; default warn). Secrets never reach it: secret types
// redact themselves and the commands log public data only.
func newLogger(e *env) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(e.getenv("ETHKEYGEN_LOG_LEVEL"))); err != nil {
		level = slog.LevelWarn
	}
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

var commands []command

func register(c command) { commands = append(commands, c) }

// usageError marks errors that come from bad flags or arguments (exit 2).
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// Exit statuses.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// interruptGrace is how long a command may take to stop after Ctrl-C before
// the process exits anyway. Every write the commands make is atomic (SQLite
// and DynamoDB transactions, files renamed into place), so exiting mid-run
// loses nothing a re-run does not redo; see tests/crash.
const interruptGrace = 800 * time.Millisecond

func main() {
	_ = hardening.DisableCoreDumps() // best effort: secrets stay out of core files
	_ = hardening.DisableDumping()   // best effort: no core through a piped core_pattern, no ptrace or /proc/<pid>/mem by the same user
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, isTerminal: isTerminal(os.Stderr)}
	go func() {
		<-ctx.Done()
		time.Sleep(interruptGrace)
		e.reportInterrupt()
		os.Exit(exitInterrupted)
	}()
	os.Exit(run(ctx, e, os.Args[1:]))
}

// exitText is the exit-status paragraph of every --help.
const exitText = "Exit status: 0 success, 1 failed, 2 bad usage (unknown flag, bad value, missing choice), 130 interrupted."

func mainUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: ethkeygen <command> [flags]\n\nCommands:\n")
	sort.Slice(commands, func(i, j int) bool { return commands[i].name < commands[j].name })
	for _, c := range commands {
		fmt.Fprintf(w, "  %-20s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'ethkeygen <command> --help' for a command's flags.\n"+
		"Results go to stdout, notices and errors to stderr; ETHKEYGEN_LOG_LEVEL=debug shows full errors.\n%s\n", exitText)
}

func run(ctx context.Context, e *env, args []string) int {
	if e.log == nil {
		e.log = newLogger(e)
	}
	if len(args) == 0 {
		mainUsage(e.stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		mainUsage(e.stdout)
		return exitOK
	case "version", "--version":
		fmt.Fprintln(e.stdout, versionString())
		return exitOK
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		e.status.mu.Lock()
		e.status.command = c.name
		e.status.mu.Unlock()
		e.log.Debug("command", "name", c.name, "version", versionString())
		err := c.run(ctx, e, args[1:])
		if err != nil {
			e.log.Debug("command failed", "name", c.name, "err", err)
		}
		switch {
		case err == nil:
			return exitOK
		case errors.Is(err, flag.ErrHelp):
			return exitOK
		case ctx.Err() != nil:
			e.reportInterrupt()
			return exitInterrupted
		case isUsage(err):
			fmt.Fprintf(e.stderr, "ethkeygen %s: %s (see --help)\n", c.name, userText(err))
			return exitUsage
		case errors.Is(err, errSilentFailure):
			return exitFailed
		default:
			fmt.Fprintf(e.stderr, "ethkeygen %s: %s\n", c.name, userText(err))
			return exitFailed
		}
	}
	fmt.Fprintf(e.stderr, "ethkeygen: unknown command %q (see ethkeygen --help)\n", args[0])
	return exitUsage
}

// isUsage: the error is the operator's request, not the run: bad flags, and
// requests that custody refuses before any work starts.
func isUsage(err error) bool {
	return errors.As(err, new(usageError)) || errors.Is(err, custody.ErrRequest) || errors.Is(err, custody.ErrRequestReused)
}

// errSilentFailure: the command already reported what went wrong.
var errSilentFailure = errors.New("failed")

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// newFlags makes a flag set whose --help prints the summary and flags to
// stdout (once), and whose parse errors become one-line usage errors.
func newFlags(e *env, name, synopsis, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	// The flag package calls Usage on every parse error too: print only
	// for --help (see parse).
	fs.Usage = func() {}
	usagePrinters.Store(fs, func() {
		fmt.Fprintf(e.stdout, "Usage: ethkeygen %s %s\n\n%s\n\nFlags:\n", name, synopsis, summary)
		fs.VisitAll(func(f *flag.Flag) {
			kind, usage := flag.UnquoteUsage(f)
			fmt.Fprintf(e.stdout, "  --%s %s\n    \t%s", f.Name, kind, usage)
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
				fmt.Fprintf(e.stdout, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(e.stdout)
		})
		fmt.Fprintf(e.stdout, "\n%s\n", exitText)
	})
	return fs
}

// usagePrinters holds the --help text printer of each flag set newFlags made.
var usagePrinters sync.Map // *flag.FlagSet -> func()

// parse parses args; it interleaves flags and positional arguments, as
// operators expect (FILE --chain mainnet).
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				if p, ok := usagePrinters.Load(fs); ok {
					p.(func())()
				}
				return nil, err
			}
			return nil, flagError(err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

func requireFlag(fs *flag.FlagSet, names ...string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, n := range names {
		if !set[n] {
			return usagef("--%s is required", n)
		}
	}
	return nil
}

// parseNoArgs parses flags of a command that takes no positional argument.
func parseNoArgs(fs *flag.FlagSet, args []string) error {
	rest, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return usagef("unexpected argument %q", rest[0])
	}
	return nil
}

// limitMemory sets the Go runtime's soft memory limit to the --max-memory
// bound plus an allowance for everything that is not a KDF buffer, unless
// the operator set GOMEMLIMIT: the collector then returns freed scrypt
// buffers before the process grows past the bound.
func limitMemory(e *env, maxMemory int64) {
	if e.getenv("GOMEMLIMIT") != "" || maxMemory <= 0 {
		return
	}
	debug.SetMemoryLimit(maxMemory + 128<<20)
}

// parseOneFile parses flags of a command that takes exactly one FILE.
func parseOneFile(fs *flag.FlagSet, args []string) (string, error) {
	rest, err := parse(fs, args)
	if err != nil {
		return "", err
	}
	if len(rest) != 1 {
		return "", usagef("want exactly one FILE, got %d", len(rest))
	}
	return rest[0], nil
}
