package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/superd/superd/pkg/config"
)

// TestReadmeExamplesAreValid parses every YAML example in README.md: the
// broken one must give exactly the errors the README prints; every other
// must be valid.
func TestReadmeExamplesAreValid(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(readme, -1)
	if len(blocks) < 4 {
		t.Fatalf("found %d yaml examples in README.md", len(blocks))
	}
	for i, m := range blocks {
		text := m[1]
		_, err := config.Parse("broken.yaml", []byte(text), config.Options{})
		if strings.Contains(text, "max_instancs") {
			want := regexp.MustCompile(`(?m)^broken\.yaml:\d+:\d+: .*$`).FindAllString(readme, -1)
			if err == nil || strings.Join(want, "\n") != err.Error() {
				t.Errorf("README's broken example: got\n%v\nREADME says\n%s", err, strings.Join(want, "\n"))
			}
			continue
		}
		if err != nil {
			t.Errorf("README example %d is invalid:\n%s\n%v", i, text, err)
		}
	}
}
