package xmpp_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"time"

	"github.com/boshd/boshd/xmpp"
)

// This example opens a stream to a local server, authenticates with SASL
// PLAIN through it and restarts the stream, as a BOSH session does on
// behalf of its browser. It needs a server, so it has no output to check.
func ExampleDialer_Dial() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := &xmpp.Dialer{TLSMode: "starttls"}
	c, err := d.Dial(ctx, xmpp.Target{Domain: "localhost", Addr: "127.0.0.1:5222", Lang: "en"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Printf("stream %s from %s, features: %s\n", c.StreamID(), c.From(), c.Features())

	// In boshd these bytes come from the browser's <body/>.
	if err := c.Write([]byte(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>`)); err != nil {
		log.Fatal(err)
	}
	for {
		b, err := c.Next()
		var se *xmpp.StreamError
		switch {
		case errors.As(err, &se):
			log.Fatalf("stream error %s; relay %s", se.Condition, se.Raw)
		case err == io.EOF:
			return // the server ended the stream
		case err != nil:
			log.Fatal(err)
		}
		fmt.Printf("relay to the browser: %s\n", b)
		if string(b) == `<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>` {
			// The browser asks for the restart with xmpp:restart='true';
			// the next Next returns the new stream's features.
			if err := c.Restart(); err != nil {
				log.Fatal(err)
			}
		}
	}
}

// A *StreamError carries the server's condition and text, and the raw
// element to relay to the browser.
func ExampleStreamError() {
	var err error = &xmpp.StreamError{Condition: "conflict", Text: "Replaced by new connection"}
	var se *xmpp.StreamError
	if errors.As(err, &se) {
		fmt.Println(se.Condition)
	}
	fmt.Println(err)
	// Output:
	// conflict
	// xmpp: stream error: conflict: Replaced by new connection
}
