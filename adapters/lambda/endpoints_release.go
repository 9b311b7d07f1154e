//go:build !ethkeygen_localendpoints

package main

// localEndpoints is false in every real build: the function refuses
// endpoint overrides and ignores shared AWS config files.
const localEndpoints = false
