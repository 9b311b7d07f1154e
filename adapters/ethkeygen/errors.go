package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// flagError turns an error of the flag package into a one-line usage error
// in the CLI's own spelling: "unknown flag --cout", with a hint for the flag
// names ethstaker-deposit-cli users type by habit.
func flagError(err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		name = strings.TrimLeft(name, "-")
		if hint := habitHint(name); hint != "" {
			return usagef("unknown flag --%s: %s", name, hint)
		}
		return usagef("unknown flag --%s", name)
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		return usagef("--%s needs a value", strings.TrimLeft(name, "-"))
	}
	if m := flagValueRE.FindStringSubmatch(msg); m != nil {
		detail := m[3]
		switch detail {
		case "parse error":
			detail = "not a valid value"
			if m[1] == "" {
				detail = "empty value"
			}
		case "value out of range":
			detail = "out of range"
		}
		return usagef("--%s %q: %s", m[2], m[1], detail)
	}
	if rest, ok := strings.CutPrefix(msg, "bad flag syntax: "); ok {
		return usagef("bad flag syntax %q", rest)
	}
	return usageError{err}
}

// invalid value "x" for flag -count: parse error
// invalid boolean value "x" for -json: parse error
var flagValueRE = regexp.MustCompile(`^invalid (?:boolean )?value "(.*)" for (?:flag )?-(\S+): (.*)$`)

// habits maps flag names of ethstaker-deposit-cli (and staking-deposit-cli)
// to what ethkeygen spells them.
var habits = map[string]string{
	"num_validators":          "use --count N",
	"validator_start_index":   "use --start-index N",
	"withdrawal_address":      "use --withdrawal-address 0x..",
	"execution_address":       "use --withdrawal-address 0x..",
	"eth1_withdrawal_address": "use --withdrawal-address 0x..",
	"folder":                  "use --out DIR",
	"chain":                   "use --chain NAME (hoodi, mainnet, sepolia, ...)",
	"devnet_chain_setting":    "use --chain NAME --fork-version 0x..",
	"mnemonic":                "use --mnemonic-file F (secrets are never taken on the command line)",
	"mnemonic_language":       "use --mnemonic-language LANG",
	"mnemonic_password":       "use --mnemonic-passphrase-file F",
	"keystore_password":       "use --keystore-password-file F (secrets are never taken on the command line)",
	"pbkdf2":                  "use --kdf pbkdf2",
	"non_interactive":         "use --non-interactive",
	"amount":                  "use --amount-gwei N (in gwei, not ETH)",
	"regular-withdrawal":      "0x01 is the default with --withdrawal-address; --compounding gives 0x02",
	"regular_withdrawal":      "0x01 is the default with --withdrawal-address; --compounding gives 0x02",
	"language":                "ethkeygen has no interface language option",
}

func habitHint(name string) string {
	if h, ok := habits[name]; ok {
		return h
	}
	if strings.Contains(name, "_") {
		return "flags are spelled with dashes: --" + strings.ReplaceAll(name, "_", "-")
	}
	return ""
}

// packagePrefixRE matches the package prefixes that the library's errors
// carry ("custody: invalid request: depositdata: ..."): they help a
// developer, not an operator.
var packagePrefixRE = regexp.MustCompile(`(^|: )(?:custody|depositdata|keygen|keystore|store|sqlitestore|dynamostore|envelope|backend|fsutil|web3signer|fanout|provenance|handler|ops|json|invalid request|invalid input): `)

// JSON errors that name Go types or quote the bytes of the input (a
// password file given by mistake must not be echoed).
var (
	jsonTypeRE   = regexp.MustCompile(`(?:json: )?cannot unmarshal (\w+) into Go (?:struct field (?:\w+\.)*(\w+)|value) of type [\w.\[\]*]+`)
	jsonSyntaxRE = regexp.MustCompile(`invalid character '(?:[^']|\\')*' [\w ]+`)
)

// userText says what went wrong in the operator's terms, on one line: no
// package prefixes, no Go type names, no bytes of a file that did not parse.
// The full error is logged at debug level.
func userText(err error) string {
	s := err.Error()
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		s = strings.ReplaceAll(s, syn.Error(), fmt.Sprintf("not valid JSON (at byte %d)", syn.Offset))
	}
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		field := ute.Field
		if field == "" {
			field = "the document"
		} else {
			field = fmt.Sprintf("field %q", field)
		}
		s = strings.ReplaceAll(s, ute.Error(), fmt.Sprintf("%s has a %s where a %s belongs", field, ute.Value, jsonKind(ute.Type.Kind().String())))
	}
	// The same errors wrapped with %v (their text only).
	s = jsonSyntaxRE.ReplaceAllString(s, "not valid JSON")
	s = jsonTypeRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := jsonTypeRE.FindStringSubmatch(m)
		field := "the document"
		if sub[2] != "" {
			field = fmt.Sprintf("field %q", sub[2])
		}
		return fmt.Sprintf("%s has the wrong type (%s)", field, sub[1])
	})
	s = strings.ReplaceAll(s, "unexpected end of JSON input", "not valid JSON (it ends early)")
	for {
		t := packagePrefixRE.ReplaceAllString(s, "$1")
		if t == s {
			break
		}
		s = t
	}
	return oneLine(s)
}

func jsonKind(k string) string {
	switch {
	case strings.HasPrefix(k, "int"), strings.HasPrefix(k, "uint"), strings.HasPrefix(k, "float"):
		return "number"
	case k == "slice", k == "array":
		return "list"
	case k == "struct", k == "map":
		return "object"
	case k == "bool":
		return "true or false"
	}
	return k
}
