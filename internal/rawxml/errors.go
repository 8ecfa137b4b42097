package rawxml

import (
	"errors"
	"fmt"
)

// Errors returned by Reader. Each is wrapped with context; test with
// errors.Is.
var (
	// ErrRestricted reports XML that RFC 6120 §11.1 and XEP-0124 §6 forbid:
	// comments, processing instructions, DOCTYPE and other directives.
	ErrRestricted = errors.New("rawxml: restricted XML")
	// ErrText reports character data other than whitespace directly inside
	// the root element.
	ErrText = errors.New("rawxml: text directly inside the root element")
	// ErrLimit reports an element nested deeper than Options.MaxDepth or
	// larger than Options.MaxElementSize.
	ErrLimit = errors.New("rawxml: limit exceeded")
	// ErrMalformed reports XML that is not well-formed or not
	// namespace-well-formed.
	ErrMalformed = errors.New("rawxml: malformed XML")
)

// ErrRootEnd is returned by Next when the root element ends.
var ErrRootEnd = errors.New("rawxml: end of root element")

// Deliberate differences from encoding/xml (and the Reader built on it,
// kept as the oracle of FuzzReaderDifferential): these are refused here
// though encoding/xml accepts them in Strict mode, because XML 1.0 or
// Namespaces in XML forbids them, or (errRootData) because they are not
// the whitespace RFC 6120 and XEP-0124 allow between stanzas. Each error
// of the kind wraps one of these as well as ErrMalformed or ErrText.
var (
	// errQName: a name with a colon first or last, or whose local part
	// does not start with a name-start character (<:a>, <a:>, <a:1>,
	// xmlns:='x'), which encoding/xml takes as an unprefixed name.
	errQName = errors.New("name is not a QName")
	// errAttrSpace: attributes not separated by whitespace (<a b='1'c='2'>).
	errAttrSpace = errors.New("no whitespace between attributes")
	// errCharRef: a character reference to a surrogate (&#xD800;), which
	// encoding/xml turns into U+FFFD.
	errCharRef = errors.New("character reference to a surrogate")
	// errXMLDecl: an XML declaration that does not follow the XMLDecl
	// production (encoding/xml only looks for version= and encoding=
	// anywhere in it): version missing, out of order, unknown
	// pseudo-attributes, anything else in it.
	errXMLDecl = errors.New("not an XML declaration")
	// errProlog: before the root, character data other than XML
	// whitespace (S) that encoding/xml lets through because
	// bytes.TrimSpace removes it: references, CDATA sections, Unicode
	// spaces (U+00A0, U+0085, U+2000...).
	errProlog = errors.New("character data before the root element")
	// errRootData: the same directly inside the root (wraps ErrText).
	errRootData = errors.New("reference, CDATA section or non-XML whitespace")
	// errDupExpanded: two attributes with the same namespace and local
	// name but different prefixes (Namespaces in XML §6.3).
	errDupExpanded = errors.New("attributes with the same expanded name")
)

var (
	// errTooLarge is what readByte returns past Options.MaxElementSize.
	errTooLarge = fmt.Errorf("%w: element larger than the limit", ErrLimit)
	errBadUTF8  = fmt.Errorf("%w: invalid UTF-8", ErrMalformed)
)
