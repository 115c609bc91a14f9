package arena

import "github.com/roomwire/roomwire/netcode"

// HistoryEvent is the reliable event of the load test's history check
// (loadtest.Config.History), Jepsen-style: a bot emits it every 100 ms with
// a counter, 1, 2, 3 …, as 8 bytes big-endian, and the server echoes each
// back to the connection that sent it (EchoHistory), so that the bot can
// check every reliable event came back exactly once, in order, across
// blackouts and session resumes.
const HistoryEvent = "hist"

// HistoryRate is the budget EchoHistory gives HistoryEvent on each
// connection, of its own so that it eats into no other event's (chat's).
// A bot sends ten a second; one that resumes after a blackout sends what it
// queued meanwhile at once, up to a resume window's worth (10 s, 100
// events), hence the burst.
var HistoryRate = netcode.Rate{PerSecond: 50, Burst: 200}

// EchoHistory makes srv answer every HistoryEvent by emitting it, payload
// unchanged, back to the connection that sent it, and gives the event its
// own budget (HistoryRate). Call it before srv serves.
func EchoHistory(srv *netcode.Server) {
	srv.LimitEvent(HistoryEvent, HistoryRate)
	srv.On(HistoryEvent, func(c *netcode.Conn, p []byte) {
		_ = c.Emit(HistoryEvent, p)
	})
}
