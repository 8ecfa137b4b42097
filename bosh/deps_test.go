package bosh

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestEmbedderDependencies checks that a program that embeds the handler
// or the gateway does not pull in the libraries of boshd's configuration
// loader (viper, pflag, mapstructure): only package config/load imports
// them.
func TestEmbedderDependencies(t *testing.T) {
	t.Parallel()
	embedded := []string{"github.com/boshd/boshd/bosh", "github.com/boshd/boshd/gateway", "github.com/boshd/boshd/admin", "github.com/boshd/boshd/config"}
	out, err := exec.Command("go", append([]string{"list", "-deps"}, embedded...)...).Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/boshd/boshd/config") || !slices.Contains(deps, "mellium.im/xmpp/jid") {
		t.Fatalf("go list -deps %s lists neither config nor mellium.im/xmpp/jid:\n%s", embedded, out)
	}
	for _, dep := range deps {
		for _, banned := range []string{"github.com/spf13/viper", "github.com/spf13/pflag", "github.com/go-viper/mapstructure", "github.com/boshd/boshd/config/load"} {
			if dep == banned || strings.HasPrefix(dep, banned+"/") {
				t.Errorf("%s depend on %s, a dependency of the configuration loader only", embedded, dep)
			}
		}
	}
}

// TestGatewayDependencies checks the tiers of docs/ARCHITECTURE.md: the
// gateway, shared by the bindings, imports none of them, nor session,
// which is BOSH's.
func TestGatewayDependencies(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "github.com/boshd/boshd/gateway").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/boshd/boshd/xmpp") {
		t.Fatalf("go list -deps gateway does not list xmpp:\n%s", out)
	}
	for _, banned := range []string{"github.com/boshd/boshd/bosh", "github.com/boshd/boshd/session", "github.com/boshd/boshd/wsbind"} {
		if slices.Contains(deps, banned) {
			t.Errorf("gateway depends on %s", banned)
		}
	}
}
