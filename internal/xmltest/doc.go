// Package xmltest checks, for the tests and fuzz targets of a relay, that
// the bytes of an element it hands on stand alone: that a strict XML
// parser and internal/rawxml both read them as one element, and that
// rawxml reads them back unchanged inside a new document.
package xmltest
