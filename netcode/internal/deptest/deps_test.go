package deptest

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const mod = "github.com/roomwire/roomwire/"

// golist runs go list with a template over pkg and returns its lines.
func golist(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list"}, args...)...).CombinedOutput()
	require.NoError(t, err, "go list: %s", out)
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// forbiddenInPure says why a pure protocol package may not depend on pkg,
// or "" if it may: bytes in, bytes out, no I/O of its own.
func forbiddenInPure(self, pkg string, standard bool) string {
	switch {
	case pkg == self:
		return ""
	case pkg == "net" || strings.HasPrefix(pkg, "net/"):
		return "networking"
	case pkg == "os/exec":
		return "process execution"
	case !standard:
		return "outside the standard library"
	}
	return ""
}

func TestForbiddenInPure(t *testing.T) {
	self := mod + "reliable"
	cases := []struct {
		pkg      string
		standard bool
		bad      bool
	}{
		{self, false, false},
		{"encoding/binary", true, false},
		{"net", true, true},
		{"net/netip", true, true},
		{"os/exec", true, true},
		{"github.com/quic-go/quic-go", false, true},
		{mod + "netcode", false, true},
	}
	for _, tc := range cases {
		require.Equal(t, tc.bad, forbiddenInPure(self, tc.pkg, tc.standard) != "", tc.pkg)
	}
}

// The wire packages reach neither the network nor anything outside the
// standard library, directly or not.
func TestProtocolPackagesArePure(t *testing.T) {
	for _, pkg := range []string{mod + "reliable", mod + "unreliable"} {
		lines := golist(t, "-deps", "-f", "{{.ImportPath}} {{.Standard}}", pkg)
		require.Greater(t, len(lines), 5, "implausibly short dependency list for %s", pkg)
		for _, line := range lines {
			dep, std, _ := strings.Cut(line, " ")
			if why := forbiddenInPure(pkg, dep, std == "true"); why != "" {
				t.Errorf("%s depends on %s (%s)", pkg, dep, why)
			}
		}
	}
}

// Rooms use netcode's public API, not the transports beneath it.
func TestRoomsUseNetcodeOnly(t *testing.T) {
	imports := golist(t, "-f", "{{range .Imports}}{{.}}\n{{end}}", mod+"rooms")
	require.Contains(t, imports, mod+"netcode")
	for _, imp := range imports {
		require.False(t, strings.HasPrefix(imp, mod+"netcode/transport"), "rooms imports %s", imp)
	}
}

// No shipped binary or library package links a test helper. The load-test
// tools (loadtest, cmd/botclient) may link the impairment package, which
// darkens their bots' networks (-blackout), but no other helper.
func TestNoTestHelpersInProduction(t *testing.T) {
	helpers := []string{mod + "netcode/netcodetest", mod + "netcode/transport/impair", mod + "netcode/transport/mem"}
	loadTools := []string{mod + "netcode/netcodetest", mod + "netcode/transport/mem"}
	for pkg, forbidden := range map[string][]string{
		mod + "cmd/gameserver": helpers,
		mod + "rooms":          helpers,
		mod + "promexport":     helpers,
		mod + "cmd/botclient":  loadTools,
		mod + "loadtest":       loadTools,
	} {
		deps := golist(t, "-deps", "-f", "{{.ImportPath}}", pkg)
		for _, h := range forbidden {
			require.NotContains(t, deps, h, "%s links %s", pkg, h)
		}
	}
}

// The library links no metrics system: promexport reads it from outside,
// so a user of netcode and rooms does not get Prometheus with them.
func TestLibraryLinksNoPrometheus(t *testing.T) {
	for _, pkg := range []string{mod + "netcode", mod + "rooms"} {
		deps := golist(t, "-deps", "-f", "{{.ImportPath}}", pkg)
		require.Contains(t, deps, mod+"netcode")
		for _, dep := range deps {
			require.False(t, strings.HasPrefix(dep, "github.com/prometheus/"), "%s links %s", pkg, dep)
		}
	}
}

// The browser side of the HTTP port (package web) serves files, a
// certificate hash and tokens: it uses the token package, never the
// library or a transport, so mounting it links none of them.
func TestWebNeedsNoTransport(t *testing.T) {
	deps := golist(t, "-deps", "-f", "{{.ImportPath}}", mod+"web")
	require.Contains(t, deps, mod+"netcode/token")
	for _, dep := range deps {
		if strings.HasPrefix(dep, mod) {
			require.Contains(t, []string{mod + "web", mod + "netcode/token"}, dep, "web depends on %s", dep)
		}
	}
}
