package bosh

import (
	"bytes"
	"compress/gzip"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/boshd/boshd/internal/rawxml"
	"github.com/boshd/boshd/internal/xmltest"
	"github.com/boshd/boshd/session"
)

// Fuzzing the request side (issue: operations/hardening, part 4). See
// docs/FUZZING.md for how to run it and what a longer run found.

// FuzzParseBody feeds arbitrary request bodies to parseBody and checks:
//
//   - it never panics and always returns a body (the sid, if any, of a
//     refused request is needed to end its session);
//   - an error is a *requestError with condition bad-request (XEP-0124 §6);
//   - on success the rid is from 1 to 2^53-1 (XEP-0124 §14.1), no child
//     is a STARTTLS element (XEP-0206 §2), and each child is standalone: one
//     well-formed element with nothing restricted in it, namespaces bound,
//     unprefixed stanzas in a declared namespace (XEP-0206 §2), read back byte
//     for byte from a fresh root;
//   - the payload wrapped again in a <body/> as encodeBody writes it parses
//     to the same payload and sid: what boshd forwards is what it would
//     accept.
func FuzzParseBody(f *testing.F) {
	f.Add([]byte(`<body xmlns='` + NS + `' rid='42' sid='abc'><message to='bob@example.org'><body>hi</body></message></body>`))
	f.Add([]byte(`<body xmlns='` + NS + `' xmlns:xmpp='urn:xmpp:xbosh' rid='1' to='example.org' wait='60' hold='1' ver='1.6' xmpp:version='1.0'/>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := parseBody(data)
		if b == nil {
			t.Fatalf("nil body (err %v)", err)
		}
		if err != nil {
			var re *requestError
			if !errors.As(err, &re) || re.cond != session.BadRequest {
				t.Fatalf("error %v (%T), want a *requestError with bad-request", err, err)
			}
			return
		}
		if b.rid < 1 || b.rid > session.MaxRID {
			t.Fatalf("accepted rid %d", b.rid)
		}
		for i, p := range b.payload {
			top, err := checkStandaloneChild(p)
			if err != nil {
				t.Fatalf("child %d %q: %v", i, p, err)
			}
			if top.Space == nsTLS {
				t.Fatalf("child %d %q is STARTTLS", i, p)
			}
			// encoding/xml leaves an element named xmlns in no
			// namespace, whatever the declarations.
			if top.Space == "" && top.Local != "xmlns" {
				t.Fatalf("child %d %q is in no namespace", i, p)
			}
		}
		again := encodeBody(&session.Response{Payload: b.payload}, attr{"rid", strconv.FormatUint(b.rid, 10)}, attr{"sid", b.sid})
		b2, err := parseBody(again)
		if err != nil {
			t.Fatalf("payload wrapped again %q: %v", again, err)
		}
		if b2.sid != b.sid || len(b2.payload) != len(b.payload) {
			t.Fatalf("payload wrapped again %q: sid %q, %d children; want %q, %d", again, b2.sid, len(b2.payload), b.sid, len(b.payload))
		}
		for i := range b.payload {
			if !bytes.Equal(b2.payload[i], b.payload[i]) {
				t.Fatalf("child %d wrapped again: %q, want %q", i, b2.payload[i], b.payload[i])
			}
		}
	})
}

// checkStandaloneChild checks that raw, a child parseBody returned, stands
// alone (xmltest.Standalone), read back as the child of an empty root with
// the options parseBody uses, and that rawxml and encoding/xml give it the
// same namespace; it returns its name as encoding/xml resolves it.
func checkStandaloneChild(raw []byte) (xml.Name, error) {
	top, el, err := xmltest.Standalone(raw, "<w>", "</w>", rawxml.Options{DefaultNS: nsClient, MaxDepth: defaultMaxDepth})
	if err != nil {
		return top, err
	}
	if el.NS != top.Space && top != (xml.Name{Local: "xmlns"}) {
		return top, fmt.Errorf("rawxml puts it in %q, encoding/xml in %q", el.NS, top.Space)
	}
	return top, nil
}

// FuzzReadBody feeds arbitrary request bodies, sent as they are or
// declared gzip-encoded, through readBody with a max_body_size from 1 KiB
// to 65 KiB, and checks:
//
//   - what is returned is never larger than the limit, however large the
//     body decompresses to (docs/CONFORMANCE.md#limits; XEP-0124 §7.2);
//   - every refusal is a *requestError: policy-violation for a body over
//     the limit, bad-request for anything else (bad gzip), and never
//     another error, which would mean "the client went away";
//   - a plain body within the limit comes back unchanged, and a gzip body
//     that gzip decodes within the limit comes back decoded.
func FuzzReadBody(f *testing.F) {
	f.Add([]byte(`<body xmlns='`+NS+`' rid='1'/>`), false, uint16(0))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(bytes.Repeat([]byte("<a/>"), 4096))
	zw.Close()
	f.Add(gz.Bytes(), true, uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, gzipped bool, extra uint16) {
		limit := int64(1024) + int64(extra)
		r := httptest.NewRequest(http.MethodPost, "/http-bind", bytes.NewReader(data))
		if gzipped {
			r.Header.Set("Content-Encoding", "gzip")
		}
		w := httptest.NewRecorder()
		got, err := readBody(w, r, limit, nil)
		if int64(len(got)) > limit {
			t.Fatalf("returned %d bytes with limit %d", len(got), limit)
		}
		var want []byte
		wantErr := error(nil)
		if gzipped {
			zr, zerr := gzip.NewReader(bytes.NewReader(data))
			if zerr == nil {
				want, zerr = io.ReadAll(io.LimitReader(zr, limit+1))
			}
			wantErr = zerr
		} else {
			want = data
		}
		if err != nil {
			var re *requestError
			if !errors.As(err, &re) || (re.cond != session.PolicyViolation && re.cond != session.BadRequest) {
				t.Fatalf("error %v (%T), want a *requestError with policy-violation or bad-request", err, err)
			}
			if re.cond == session.BadRequest && !gzipped {
				t.Fatalf("plain body refused with %v", err)
			}
			if wantErr == nil && int64(len(want)) <= limit && int64(len(data)) <= limit {
				t.Fatalf("body of %d bytes (%d decoded) refused with limit %d: %v", len(data), len(want), limit, err)
			}
			return
		}
		if wantErr != nil {
			t.Fatalf("accepted %d bytes that gzip refuses: %v", len(got), wantErr)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("got %d bytes, want %d", len(got), len(want))
		}
	})
}
