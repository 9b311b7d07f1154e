package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ethkeygen/ethkeygen/internal/fsutil"
	"github.com/ethkeygen/ethkeygen/keygen"
)

func init() {
	register(command{"new-mnemonic", "make a new 24-word mnemonic, show it once, and write its keystores and deposit_data file", runNewMnemonic})
}

// stdinIsTerminal reports whether e reads from a terminal; tests replace it.
var stdinIsTerminal = func(e *env) bool {
	f, ok := e.stdin.(*os.File)
	return ok && isTerminal(f)
}

func runNewMnemonic(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "new-mnemonic", "--count K --chain NAME --keystore-password-file F --out DIR [--mnemonic-language L] [flags]",
		"Makes a new 24-word BIP-39 mnemonic (256 bits from the system's random source) and, like existing-mnemonic,\n"+
			"writes DIR/keystore-m_12381_3600_<i>_0_0-<unix>.json per validator and DIR/deposit_data-<unix>.json.\n"+
			"The mnemonic is the only way to recover the validators' withdrawal keys. It is shown once, on the terminal\n"+
			"(never in a log or a file), and you type it back to confirm you wrote it down; --mnemonic-out F also writes it\n"+
			"to F (mode 0600, never replacing a file). --non-interactive (for scripts) shows and asks nothing and needs\n"+
			"--mnemonic-out. Every flag is checked before the mnemonic is made.")
	lang := fs.String("mnemonic-language", string(keygen.English), "wordlist: "+strings.Join(languageNames(), ", "))
	mnemonicOut := fs.String("mnemonic-out", "", "also write the mnemonic to this file (0600; must not exist)")
	nonInteractive := fs.Bool("non-interactive", false, "show and ask nothing (needs --mnemonic-out)")
	var k keyFlags
	k.register(fs)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if err := k.check(e, fs); err != nil {
		return err
	}
	language := keygen.Language(strings.ToLower(*lang))
	if !knownLanguage(language) {
		return usagef("--mnemonic-language %q: want one of %s", *lang, strings.Join(languageNames(), ", "))
	}
	if *nonInteractive && *mnemonicOut == "" {
		return usagef("--non-interactive needs --mnemonic-out F: the mnemonic must reach you somewhere")
	}
	if !*nonInteractive && !(e.isTerminal && stdinIsTerminal(e)) {
		return usagef("new-mnemonic shows the mnemonic on a terminal and asks you to type it back: run it in one, " +
			"or use --non-interactive --mnemonic-out F")
	}
	password, err := k.password()
	if err != nil {
		return err
	}
	defer password.Destroy()

	mnemonic, err := keygen.NewMnemonic(rand.Reader, language)
	if err != nil {
		return err
	}
	defer mnemonic.Destroy()
	if *mnemonicOut != "" {
		b := []byte(mnemonic.UnsafeString() + "\n")
		err := fsutil.WriteFileAtomic(*mnemonicOut, b, 0o600)
		keygen.Wipe(b)
		if err != nil {
			return fmt.Errorf("writing the mnemonic file: %w", err)
		}
		fmt.Fprintf(e.stderr, "mnemonic written to %s (mode 0600): keep it offline, it recovers the withdrawal keys\n", *mnemonicOut)
	}
	if !*nonInteractive {
		if err := showAndConfirm(ctx, e, mnemonic); err != nil {
			return err
		}
	}
	seed, err := k.seed(mnemonic)
	if err != nil {
		return err
	}
	defer seed.Destroy()
	return k.write(ctx, e, seed, password)
}

// errNotConfirmed: the operator did not type the mnemonic back.
var errNotConfirmed = errors.New("the mnemonic was not confirmed: no keys written (run again for a new mnemonic)")

// showAndConfirm shows the mnemonic on the terminal (stderr), waits for
// Enter, clears the screen and asks for the mnemonic back until it matches
// (words may be abbreviated to four letters, as when recovering).
func showAndConfirm(ctx context.Context, e *env, m *keygen.Mnemonic) error {
	in := bufio.NewReader(e.stdin)
	w := e.stderr
	fmt.Fprintf(w, "\nThis is your mnemonic (%s, %d words). Write it down on paper and keep it safe: it is the\n"+
		"only way to recover your validators' withdrawal keys. Anyone who has it can take your stake.\n\n", m.Language(), m.Words())
	words := strings.Fields(m.UnsafeString())
	for i, word := range words {
		fmt.Fprintf(w, "%2d. %-12s", i+1, word)
		if i%4 == 3 {
			fmt.Fprintln(w)
		}
		words[i] = ""
	}
	fmt.Fprint(w, "\nPress Enter when you have written it down.")
	if _, err := readLine(ctx, in); err != nil {
		return err
	}
	fmt.Fprint(w, "\033[2J\033[3J\033[H") // clear the screen and its scrollback
	for {
		fmt.Fprint(w, "Type your mnemonic to confirm you wrote it down: ")
		line, err := readLine(ctx, in)
		if err != nil {
			return err
		}
		typed, perr := keygen.ParseMnemonic(string(line))
		keygen.Wipe(line)
		same := perr == nil && typed.UnsafeString() == m.UnsafeString()
		typed.Destroy()
		if same {
			fmt.Fprint(w, "\033[2J\033[3J\033[H")
			fmt.Fprintln(w, "mnemonic confirmed")
			return nil
		}
		fmt.Fprintln(w, "That is not the mnemonic shown. Try again (Ctrl-C to stop; no keys are written).")
	}
}

// readLine reads one line (without its newline) or fails on end of input
// or interruption.
func readLine(ctx context.Context, in *bufio.Reader) ([]byte, error) {
	type res struct {
		b   []byte
		err error
	}
	ch := make(chan res, 1)
	go func() {
		b, err := in.ReadBytes('\n')
		ch <- res{b, err}
	}()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r := <-ch:
		if r.err != nil && (len(r.b) == 0 || !errors.Is(r.err, io.EOF)) {
			keygen.Wipe(r.b)
			if errors.Is(r.err, io.EOF) {
				return nil, errNotConfirmed
			}
			return nil, r.err
		}
		n := len(r.b)
		for n > 0 && (r.b[n-1] == '\n' || r.b[n-1] == '\r') {
			n--
		}
		return r.b[:n], nil
	}
}

func knownLanguage(l keygen.Language) bool {
	for _, x := range keygen.Languages {
		if x == l {
			return true
		}
	}
	return false
}

func languageNames() []string {
	var out []string
	for _, l := range keygen.Languages {
		out = append(out, string(l))
	}
	return out
}
