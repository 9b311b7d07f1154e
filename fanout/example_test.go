package fanout_test

import (
	"fmt"

	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/fanout"
)

// A run of 12 validators in batches of 5: the batch request ids derive from
// the run id, so running the same plan again resumes it.
func ExamplePlan_Batch() {
	p := fanout.Plan{Function: "ethkeygen", Total: 12, BatchSize: 5,
		Spec: custody.Spec{RequestID: "2026-11-hoodi", Chain: "hoodi", SecretFormat: "raw"}}
	for i := range p.Batches() {
		b := p.Batch(i)
		fmt.Println(b.RequestID, b.Count)
	}
	// Output:
	// 2026-11-hoodi/b00000 5
	// 2026-11-hoodi/b00001 5
	// 2026-11-hoodi/b00002 2
}
