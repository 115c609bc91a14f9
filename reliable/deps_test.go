package reliable

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const selfPkg = "github.com/roomwire/roomwire/reliable"

// forbiddenDep says why the package may not depend on pkg, or "" if it may.
// The package is pure protocol logic: bytes in, bytes out, no I/O of its own.
func forbiddenDep(pkg string, standard bool) string {
	switch {
	case pkg == selfPkg:
		return ""
	case pkg == "net" || strings.HasPrefix(pkg, "net/"):
		return "networking"
	case pkg == "os/exec":
		return "process execution"
	case strings.HasPrefix(pkg, "github.com/quic-go/"), strings.HasPrefix(pkg, "github.com/xtaci/"):
		return "transport library"
	case !standard:
		return "outside the standard library"
	}
	return ""
}

func TestForbiddenDep(t *testing.T) {
	cases := []struct {
		pkg      string
		standard bool
		bad      bool
	}{
		{selfPkg, false, false},
		{"bufio", true, false},
		{"encoding/binary", true, false},
		{"net", true, true},
		{"net/netip", true, true},
		{"net/http", true, true},
		{"os/exec", true, true},
		{"github.com/quic-go/quic-go", false, true},
		{"github.com/xtaci/kcp-go/v5", false, true},
		{"github.com/roomwire/roomwire/netcode", false, true},
		{"golang.org/x/net/ipv4", false, true},
	}
	for _, tc := range cases {
		require.Equal(t, tc.bad, forbiddenDep(tc.pkg, tc.standard) != "", tc.pkg)
	}
}

// TestDeps is an import-rule test: the package must not reach the network or
// any package outside the standard library, directly or indirectly.
func TestDeps(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not in PATH")
	}
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}}", selfPkg).CombinedOutput()
	require.NoError(t, err, "go list: %s", out)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var sawSelf bool
	for _, line := range lines {
		pkg, std, ok := strings.Cut(line, " ")
		require.True(t, ok, "unexpected go list line %q", line)
		if why := forbiddenDep(pkg, std == "true"); why != "" {
			t.Errorf("%s depends on %s (%s)", selfPkg, pkg, why)
		}
		sawSelf = sawSelf || pkg == selfPkg
	}
	require.True(t, sawSelf, "go list output lacks the package itself:\n%s", out)
	require.Greater(t, len(lines), 5, "implausibly short dependency list")
}
