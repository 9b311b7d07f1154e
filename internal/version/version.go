// Package version names this build of ethkeygen: the release version (also
// written as deposit_cli_version, which the Staking Launchpad requires to be
// at least 1.0.0) and a build hash for the provenance of stored records.
package version

import (
	"runtime/debug"
	"sync"
)

// Version is the release version, semantic versioning.
const Version = "1.0.0"

// buildHash can be set at link time: -ldflags "-X github.com/ethkeygen/ethkeygen/internal/version.buildHash=<commit>".
var buildHash string

// BuildHash identifies the code that runs: the link-time hash, else the VCS
// revision Go recorded, else "devel".
var BuildHash = sync.OnceValue(func() string {
	if buildHash != "" {
		return buildHash
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				return s.Value
			}
		}
	}
	return "devel"
})
