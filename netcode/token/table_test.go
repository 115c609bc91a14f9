package token

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// claims makes the claims of a token numbered n that expires at exp.
func claims(n int, exp time.Time) *Claims {
	c := &Claims{Expires: time.Unix(exp.Unix(), 0)}
	c.Tag[0], c.Tag[1], c.Tag[2] = byte(n), byte(n>>8), byte(n>>16)
	return c
}

func TestTablePolicies(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	a := netip.MustParseAddrPort("192.0.2.1:1000")
	a2 := netip.MustParseAddrPort("192.0.2.1:2000") // same IP, another port
	b := netip.MustParseAddrPort("198.51.100.7:1000")
	mappedB := netip.MustParseAddrPort("[::ffff:198.51.100.7]:1000")
	type step struct {
		what string
		tok  int
		exp  time.Duration // from t0
		addr netip.AddrPort
		at   time.Duration // from t0
		want error         // nil: accepted
	}
	cases := []struct {
		name  string
		cfg   TableConfig
		steps []step
		len   int // entries at the end
	}{
		{
			name: "reuse from another address is refused, from the same address accepted",
			steps: []step{
				{"first use", 1, time.Minute, a, 0, nil},
				{"again from the same address", 1, time.Minute, a, time.Second, nil},
				{"from another port of the same IP", 1, time.Minute, a2, time.Second, ErrReused},
				{"from another IP", 1, time.Minute, b, time.Second, ErrReused},
				{"after it expired, from anywhere", 1, time.Minute, b, time.Minute, nil},
			},
			len: 1,
		},
		{
			name: "IPv4 mapped into IPv6 is the IPv4 address",
			steps: []step{
				{"v4", 1, time.Minute, b, 0, nil},
				{"mapped", 1, time.Minute, mappedB, 0, nil},
			},
			len: 1,
		},
		{
			name: "lifetime over the cap is refused whatever the token says",
			cfg:  TableConfig{MaxLifetime: time.Minute},
			steps: []step{
				{"at the cap", 1, time.Minute, a, 0, nil},
				{"a second over", 2, time.Minute + time.Second, a, 0, ErrLifetime},
				{"an hour", 3, time.Hour, a, 0, ErrLifetime},
				{"within the cap once time passed", 3, time.Hour, a, time.Hour - 30*time.Second, nil},
			},
			len: 1, // the first expired meanwhile
		},
		{
			name: "the default lifetime cap is 5 minutes",
			steps: []step{
				{"5 min", 1, 5 * time.Minute, a, 0, nil},
				{"6 min", 2, 6 * time.Minute, a, 0, ErrLifetime},
			},
			len: 1,
		},
		{
			name: "one IP holds at most MaxPerIP, others go on",
			cfg:  TableConfig{MaxPerIP: 2},
			steps: []step{
				{"1st", 1, time.Minute, a, 0, nil},
				{"2nd, another port", 2, time.Minute, a2, 0, nil},
				{"3rd", 3, time.Minute, a, 0, ErrTooManyFromIP},
				{"a remembered one still works", 1, time.Minute, a, 0, nil},
				{"another IP", 4, 2 * time.Minute, b, 0, nil},
				{"room again once one expired", 3, 2 * time.Minute, a, time.Minute, nil},
			},
			len: 2, // tokens 3 and 4 (1, 2 expired)
		},
		{
			name: "a full table forgets expired entries first",
			cfg:  TableConfig{MaxTokens: 2},
			steps: []step{
				{"short", 1, time.Second, a, 0, nil},
				{"long", 2, time.Minute, b, 0, nil},
				{"full", 3, time.Minute, b, 0, ErrTableFull},
				{"the short one expired: room", 3, time.Minute, b, time.Second, nil},
				{"full of live tokens: refused", 4, time.Minute, a, 2 * time.Second, ErrTableFull},
				{"a remembered one still works", 2, time.Minute, b, 2 * time.Second, nil},
			},
			len: 2,
		},
		{
			name: "the expiry second itself is expired",
			cfg:  TableConfig{MaxTokens: 1},
			steps: []step{
				{"use", 1, 10 * time.Second, a, 0, nil},
				{"a second before", 2, time.Minute, b, 9 * time.Second, ErrTableFull},
				{"at the expiry", 2, time.Minute, b, 10 * time.Second, nil},
			},
			len: 1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tab := NewTable(tc.cfg)
			for _, s := range tc.steps {
				c := claims(s.tok, t0.Add(s.exp))
				now := t0.Add(s.at)
				checked := tab.Check(c, s.addr, now)
				before := tab.Len()
				err := tab.Use(c, s.addr, now)
				if s.want == nil {
					require.NoError(t, err, s.what)
					require.NoError(t, checked, "%s: Check agrees", s.what)
				} else {
					require.ErrorIs(t, err, s.want, s.what)
					require.ErrorIs(t, checked, s.want, "%s: Check agrees", s.what)
					require.LessOrEqual(t, tab.Len(), before, "%s: a refused token takes no entry", s.what)
				}
			}
			require.Equal(t, tc.len, tab.Len())
		})
	}
}

func TestTableCheckRemembersNothing(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	tab := NewTable(TableConfig{MaxTokens: 4})
	for i := range 1000 {
		require.NoError(t, tab.Check(claims(i, t0.Add(time.Minute)), netip.MustParseAddrPort("192.0.2.1:1000"), t0))
	}
	require.Zero(t, tab.Len())
}

func TestTableExpireFreesMemory(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	tab := NewTable(TableConfig{})
	for i := range 6000 {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1})
		require.NoError(t, tab.Use(claims(i, t0.Add(time.Duration(1+i%60)*time.Second)), netip.AddrPortFrom(ip, 1), t0))
	}
	require.Equal(t, 6000, tab.Len())
	tab.Expire(t0.Add(30 * time.Second))
	require.Equal(t, 3000, tab.Len(), "the tokens of the first 30 s are gone")
	tab.Expire(t0.Add(time.Minute))
	require.Zero(t, tab.Len())
	require.Empty(t, tab.perIP)
	require.Empty(t, tab.byExpiry)
}
