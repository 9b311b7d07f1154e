package release

import (
	"bytes"
	"debug/elf"
	"fmt"
	"strconv"
	"strings"
)

// MaxGlibc is the newest glibc symbol version the binary may need: the
// glibc of the provided.al2023 runtime (Amazon Linux 2023 ships 2.34).
var MaxGlibc = [2]int{2, 34}

// CheckBinary holds what Build promises about bootstrap: an ELF executable
// for the architecture, whose stack is not executable, that needs no glibc
// newer than MaxGlibc and that contains none of the given paths (the build
// directory must not leak into the binary).
func CheckBinary(b []byte, goarch string, forbidden ...string) error {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%w: bootstrap is not ELF: %w", ErrBuild, err)
	}
	defer f.Close()
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[goarch]
	if f.Machine != want {
		return fmt.Errorf("%w: bootstrap is for %v, want %v", ErrBuild, f.Machine, want)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_GNU_STACK && p.Flags&elf.PF_X != 0 {
			return fmt.Errorf("%w: bootstrap has an executable stack", ErrBuild)
		}
	}
	syms, err := f.ImportedSymbols()
	if err != nil && !strings.Contains(err.Error(), "no symbol") {
		return fmt.Errorf("%w: bootstrap symbols: %w", ErrBuild, err)
	}
	for _, s := range syms {
		v, ok := strings.CutPrefix(s.Version, "GLIBC_")
		if !ok {
			continue
		}
		if newer(v, MaxGlibc) {
			return fmt.Errorf("%w: bootstrap needs %s@GLIBC_%s, newer than the runtime's glibc %d.%d", ErrBuild, s.Name, v, MaxGlibc[0], MaxGlibc[1])
		}
	}
	for _, p := range forbidden {
		if p != "" && bytes.Contains(b, []byte(p)) {
			return fmt.Errorf("%w: bootstrap contains the build path %q", ErrBuild, p)
		}
	}
	return nil
}

// newer reports whether version v ("2.35", "2.2.5") is newer than max.
func newer(v string, max [2]int) bool {
	parts := strings.Split(v, ".")
	for i := 0; i < 2; i++ {
		n := 0
		if i < len(parts) {
			n, _ = strconv.Atoi(parts[i])
		}
		if n != max[i] {
			return n > max[i]
		}
	}
	return false
}
