package reliable

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCloseCodeString(t *testing.T) {
	cases := []struct {
		code CloseCode
		want string
	}{
		{CloseNormal, "normal"},
		{CloseGoingAway, "going away"},
		{CloseProtocolError, "protocol error"},
		{CloseFrameTooLarge, "frame too large"},
		{CloseVersionMismatch, "version mismatch"},
		{CloseHandshakeTimeout, "handshake timeout"},
		{CloseRefused, "refused"},
		{CloseSlowConsumer, "slow consumer"},
		{CloseInternal, "internal error"},
		{CloseKicked, "kicked"},
		{CloseTimeout, "timeout"},
		{CloseOverBudget, "over budget"},
		{CloseExpired, "expired"},
		{CloseMoved, "moved"},
		{14, "CloseCode(14)"},
		{0xffff, "CloseCode(65535)"},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, tc.code.String())
	}
}

// The code values are wire format (PROTOCOL.md 4.2); they must not move.
func TestCloseCodeValues(t *testing.T) {
	codes := []CloseCode{
		CloseNormal, CloseGoingAway, CloseProtocolError, CloseFrameTooLarge,
		CloseVersionMismatch, CloseHandshakeTimeout, CloseRefused,
		CloseSlowConsumer, CloseInternal, CloseKicked, CloseTimeout, CloseOverBudget,
	}
	for i, c := range codes {
		require.Equal(t, CloseCode(i), c)
		b := AppendClose(nil, c, c.String())
		f, err := ParseBody(FrameClose, b[HeaderLen:])
		require.NoError(t, err)
		require.Equal(t, c, f.Code)
		require.Equal(t, c.String(), string(f.Payload))
	}
}
