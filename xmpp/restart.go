package xmpp

import (
	"errors"
	"fmt"
	"io"
	"net"
)

// saslState says where the stream restart after SASL success stands.
type saslState uint8

const (
	saslNone      saslState = iota // no restart pending
	saslSuccess                    // Next returned <success/>; waiting for Restart
	saslRestarted                  // Restart sent the header; Next will read the server's
)

// testHookRestartWait, if not nil, is called by Next when it starts
// waiting for Restart.
var testHookRestartWait func()

// Restart restarts the stream after SASL success (RFC 6120 §6.4.6): it
// sends a new stream header, with the same Domain, Lang and From as Dial,
// and lets Next go on to read the server's new header and features.
//
// It returns an error if Next has not returned a SASL <success/> since the
// last restart, and the write error if the header could not be sent.
func (c *Conn) Restart() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.writable("restart"); err != nil {
		return err
	}
	c.mu.Lock()
	state := c.sasl
	c.mu.Unlock()
	if state != saslSuccess {
		return errors.New("xmpp: restart without SASL success")
	}
	if err := c.write(appendHeader(make([]byte, 0, 256), &c.target)); err != nil {
		return err
	}
	c.mu.Lock()
	c.sasl = saslRestarted
	select {
	case c.wake <- struct{}{}:
	default:
	}
	c.mu.Unlock()
	return nil
}

// awaitRestart waits until Restart has sent the new header, or the Conn
// is closed (io.EOF) or dropped (net.ErrClosed). The caller is the
// goroutine calling Next.
func (c *Conn) awaitRestart() error {
	c.mu.Lock()
	for c.sasl == saslSuccess && !c.closing && !c.dropped.Load() {
		w := c.wake
		c.mu.Unlock()
		if testHookRestartWait != nil {
			testHookRestartWait()
		}
		<-w
		c.mu.Lock()
	}
	closing, dropped := c.closing, c.dropped.Load()
	c.sasl, c.wake = saslNone, nil
	c.mu.Unlock()
	switch {
	case dropped:
		return fmt.Errorf("xmpp: waiting for restart: %w", net.ErrClosed)
	case closing:
		return io.EOF
	}
	return nil
}
