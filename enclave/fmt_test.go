//go:build !ethkeygen_fuzzonly

package enclave_test

import "fmt"

func fmtAll(v any) string { return fmt.Sprintf("%v %+v %#v %s", v, v, v, v) }
