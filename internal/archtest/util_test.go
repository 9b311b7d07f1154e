package archtest

import (
	"os"
	"path/filepath"
)

func readRepoFile(name string) (string, error) {
	b, err := os.ReadFile(filepath.Join("..", "..", filepath.FromSlash(name)))
	return string(b), err
}
