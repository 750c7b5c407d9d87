// Package cart fails while the state file says "down": a stand-in for a staging app that a
// redeploy fixes.
package cart

import (
	"os"
	"strings"
	"testing"
)

func status() int {
	b, err := os.ReadFile(os.Getenv("STATE_FILE"))
	if err == nil && strings.TrimSpace(string(b)) == "up" {
		return 200
	}
	return 503
}

func TestCart(t *testing.T) {
	t.Run("adds items", func(t *testing.T) {
		if got := status(); got != 200 {
			t.Errorf("POST /cart: got %d, want 200", got)
		}
	})
	t.Run("shows the total", func(t *testing.T) {})
}

func TestCartEmpty(t *testing.T) {}
