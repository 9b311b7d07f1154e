//go:build unix

package envelope

import "syscall"

// oNoFollow makes open fail if the final path element is a symlink.
const oNoFollow = syscall.O_NOFOLLOW
