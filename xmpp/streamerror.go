package xmpp

import (
	"bytes"
	"encoding/xml"
	"strings"
)

// StreamError is a <stream:error> sent by the server (RFC 6120 §4.9). The
// server closes the stream after it, so a Conn that returned one is done.
type StreamError struct {
	// Condition is the local name of the defined condition, such as
	// "conflict" or "host-unknown"; "" if the element has none.
	Condition string
	// Text is the content of the optional <text/> element.
	Text string
	// Raw is the whole <stream:error> element as the server sent it,
	// standalone (it declares xmlns:stream), for relaying to the client.
	Raw []byte
}

// Error returns "xmpp: stream error: " followed by the condition and the
// text, if any.
func (e *StreamError) Error() string {
	var b strings.Builder
	b.WriteString("xmpp: stream error: ")
	if e.Condition == "" {
		b.WriteString("no condition")
	} else {
		b.WriteString(e.Condition)
	}
	if e.Text != "" {
		b.WriteString(": ")
		b.WriteString(e.Text)
	}
	return b.String()
}

// parseStreamError reads the condition and text out of a standalone
// <stream:error> element. Malformed content leaves the fields it did not
// reach empty; Raw is always set.
func parseStreamError(raw []byte) *StreamError {
	e := &StreamError{Raw: raw}
	d := xml.NewDecoder(bytes.NewReader(raw))
	var (
		depth  int
		inText bool
		text   []byte
	)
	for {
		tok, err := d.Token()
		if err != nil {
			break
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth != 2 || t.Name.Space != nsStreams {
				continue
			}
			if t.Name.Local == "text" {
				inText = true
			} else if e.Condition == "" {
				e.Condition = t.Name.Local
			}
		case xml.EndElement:
			if depth == 2 {
				inText = false
			}
			depth--
		case xml.CharData:
			if inText && depth == 2 {
				text = append(text, t...)
			}
		}
	}
	e.Text = string(text)
	return e
}
