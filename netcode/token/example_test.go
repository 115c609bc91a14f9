package token_test

import (
	"fmt"
	"time"

	"github.com/roomwire/roomwire/netcode/token"
)

// A matchmaker mints a connect token for a player; the game server opens
// it with the same key and learns who the player is. The client only
// carries the token: it cannot read or change the private part.
func ExampleIssue() {
	key := token.NewKey()
	const protocolID = 7
	now := time.Now()
	tok, err := token.Issue(key, token.Params{
		ProtocolID: protocolID, ClientID: 42, UserData: []byte("gold tier"),
		Servers: []string{"kcp://203.0.113.5:7778"}, TTL: time.Minute,
	}, now)
	if err != nil {
		fmt.Println(err)
		return
	}
	b, _ := tok.MarshalBinary() // what the matchmaker sends the client

	var held token.ConnectToken // the client's copy
	_ = held.UnmarshalBinary(b)
	wire := held.Wire() // what the client presents when it connects
	claims, err := token.NewOpener(key, protocolID).Open(wire, now)
	fmt.Println(claims.ClientID, string(claims.UserData), claims.Servers, err)

	_, err = token.NewOpener(token.NewKey(), protocolID).Open(wire, now)
	fmt.Println("another key:", err != nil)
	// Output:
	// 42 gold tier [kcp://203.0.113.5:7778] <nil>
	// another key: true
}
