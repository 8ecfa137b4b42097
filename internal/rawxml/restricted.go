package rawxml

import "fmt"

// What XMPP forbids (RFC 6120 §11.1, XEP-0124 §6) is refused where it
// starts: comments and directives (DOCTYPE) here, after "<!"; processing
// instructions after "<?", in prologPI (but for an XML declaration at the
// very start), next and markup.

// bang reads what follows "<!": a comment or a directive (DOCTYPE), which
// it refuses as restricted, or the start of a CDATA section, which it reads
// up to "<![CDATA[" and accepts.
func (rd *Reader) bang() error {
	b, err := rd.readByte()
	if err != nil {
		return err
	}
	switch b {
	case '-':
		if b, err = rd.readByte(); err != nil {
			return err
		}
		if b != '-' {
			return fmt.Errorf("%w: invalid sequence <!- not part of <!--", ErrMalformed)
		}
		return fmt.Errorf("%w: comment", ErrRestricted)
	case '[':
		ok, err := rd.readLiteral("CDATA[")
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: invalid <![ sequence", ErrMalformed)
		}
		return nil
	}
	return fmt.Errorf("%w: DOCTYPE or other directive", ErrRestricted)
}
