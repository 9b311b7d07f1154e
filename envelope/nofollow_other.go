//go:build !unix

package envelope

// oNoFollow is unavailable here; O_EXCL still refuses existing symlinks
// when creating files.
const oNoFollow = 0
