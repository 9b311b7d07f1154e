//go:build !linux

package hardening

func disableDumping() error { return nil }
