package rawxml

import "io"

// readByte reads one byte, within Options.MaxElementSize, appending it to
// buf if rec is set. The end of the input is io.ErrUnexpectedEOF.
func (rd *Reader) readByte() (byte, error) {
	if rd.opts.MaxElementSize > 0 && rd.n >= rd.opts.MaxElementSize {
		return 0, errTooLarge
	}
	b, err := rd.r.ReadByte()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	rd.n++
	if rd.rec {
		rd.buf = append(rd.buf, b)
	}
	return b, nil
}

// readSpace reads bytes until one that is not XML whitespace, and returns
// it.
func (rd *Reader) readSpace() (byte, error) {
	for {
		b, err := rd.readByte()
		if err != nil || !isSpace(b) {
			return b, err
		}
	}
}

// readLiteral reads the bytes of s, up to the first that differs, and
// reports whether they were s.
func (rd *Reader) readLiteral(s string) (bool, error) {
	for i := 0; i < len(s); i++ {
		b, err := rd.readByte()
		if err != nil {
			return false, err
		}
		if b != s[i] {
			return false, nil
		}
	}
	return true, nil
}

// isSpace reports whether c is XML whitespace.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n'
}

// byteReader makes an io.Reader an io.ByteReader, reading one byte at a
// time.
type byteReader struct {
	r   io.Reader
	one [1]byte
}

func (b *byteReader) ReadByte() (byte, error) {
	for {
		n, err := b.r.Read(b.one[:])
		if n == 1 {
			return b.one[0], nil
		}
		if err != nil {
			return 0, err
		}
	}
}
