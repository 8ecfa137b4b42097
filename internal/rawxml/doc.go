// Package rawxml reads the children of an XML root element as their
// original bytes, for relaying without re-serialisation.
//
// Both directions of a BOSH connection manager have this shape: a client's
// <body/> wraps the stanzas to send upstream, and the server's
// <stream:stream> wraps the stanzas to send back. Re-encoding them through
// encoding/xml duplicates and mangles namespace declarations, so Reader
// slices each child out of the input by offset instead, checks it is
// well-formed (matching end tags, bound prefixes, no repeated attributes),
// refuses what XMPP forbids (comments, processing instructions, DOCTYPE and
// entities other than the predefined ones), and adds only the namespace
// declarations the child inherited from the root, so it stands alone.
//
// Document checks the other shape, that of XMPP over WebSocket (RFC 7395):
// a message that is one standalone element, with the same checks, which
// it returns as a slice of the message.
//
// Reader scans the bytes itself rather than through encoding/xml's
// tokenizer, which allocated for nearly every token: a child costs one
// allocation, its Raw copy. FuzzReaderDifferential holds it to the
// encoding/xml-based Reader it replaced (see docs/FUZZING.md).
package rawxml
