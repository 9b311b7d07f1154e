// Command ethkeygen is the operator CLI of ethkeygen: it generates validator
// keys into the secure store (generate), exports Launchpad files, decrypts
// into a Web3Signer key directory in protected compute, and offers the
// staking-deposit-cli style existing-mnemonic flow and file verification.
//
// Every command takes --help. Errors are one line on stderr and a non-zero
// exit status (1 for a failed run, 2 for bad usage).
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
	"syscall"

	"github.com/ethkeygen/ethkeygen/internal/hardening"
)

// env is what a command sees of the outside world; tests substitute it.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	isTerminal     bool // stderr is a terminal: show progress
	log            *slog.Logger
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

func main() {
	_ = hardening.DisableCoreDumps() // best effort: secrets stay out of core files
	_ = hardening.DisableDumping()   // best effort: no core through a piped core_pattern, no ptrace or /proc/<pid>/mem by the same user
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, isTerminal: isTerminal(os.Stderr)}
	os.Exit(run(ctx, e, os.Args[1:]))
}

func mainUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: ethkeygen <command> [flags]\n\nCommands:\n")
	sort.Slice(commands, func(i, j int) bool { return commands[i].name < commands[j].name })
	for _, c := range commands {
		fmt.Fprintf(w, "  %-20s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'ethkeygen <command> --help' for a command's flags.\n")
}

func run(ctx context.Context, e *env, args []string) int {
	if e.log == nil {
		e.log = newLogger(e)
	}
	if len(args) == 0 {
		mainUsage(e.stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		mainUsage(e.stdout)
		return 0
	case "version", "--version":
		fmt.Fprintln(e.stdout, versionString())
		return 0
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		e.log.Debug("command", "name", c.name, "version", versionString())
		err := c.run(ctx, e, args[1:])
		if err != nil {
			e.log.Debug("command failed", "name", c.name, "err", err)
		}
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, new(usageError)):
			fmt.Fprintf(e.stderr, "ethkeygen %s: %s\n", c.name, oneLine(err.Error()))
			fmt.Fprintf(e.stderr, "Run 'ethkeygen %s --help' for usage.\n", c.name)
			return 2
		case errors.Is(err, errSilentFailure):
			return 1
		default:
			fmt.Fprintf(e.stderr, "ethkeygen %s: %s\n", c.name, oneLine(err.Error()))
			return 1
		}
	}
	fmt.Fprintf(e.stderr, "ethkeygen: unknown command %q\n", args[0])
	mainUsage(e.stderr)
	return 2
}

// errSilentFailure: the command already reported what went wrong.
var errSilentFailure = errors.New("failed")

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// newFlags makes a flag set whose --help prints the summary and flags to
// stdout, and whose parse errors become usage errors.
func newFlags(e *env, name, synopsis, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fs.SetOutput(e.stdout)
		fmt.Fprintf(e.stdout, "Usage: ethkeygen %s %s\n\n%s\n\nFlags:\n", name, synopsis, summary)
		fs.VisitAll(func(f *flag.Flag) {
			kind, usage := flag.UnquoteUsage(f)
			fmt.Fprintf(e.stdout, "  --%s %s\n    \t%s", f.Name, kind, usage)
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
				fmt.Fprintf(e.stdout, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(e.stdout)
		})
	}
	return fs
}

// parse parses args; it interleaves flags and positional arguments, as
// operators expect (FILE --chain mainnet).
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.Usage()
				return nil, err
			}
			return nil, usageError{err}
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
