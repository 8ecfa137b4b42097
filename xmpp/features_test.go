package xmpp

import "testing"

func TestFilterFeatures(t *testing.T) {
	t.Parallel()
	const open = `<stream:features xmlns:stream='http://etherx.jabber.org/streams'>`
	const end = `</stream:features>`
	for _, tc := range []struct {
		name     string
		in, want string
		starttls bool
		keepSM   bool // Target.KeepSM
	}{
		{
			name: "nothing to remove: same bytes",
			in:   open + `<bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/><session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session>` + end,
			want: open + `<bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/><session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session>` + end,
		},
		{
			name:     "starttls removed and reported",
			in:       open + `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>` + end,
			want:     open + end,
			starttls: true,
		},
		{
			name: "-PLUS mechanisms removed, PLAIN and SCRAM-SHA-1 kept",
			in:   open + `<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'> <mechanism>SCRAM-SHA-256-PLUS</mechanism> <mechanism>SCRAM-SHA-1</mechanism> <mechanism> SCRAM-SHA-1-PLUS </mechanism> <mechanism>PLAIN</mechanism> </mechanisms>` + end,
			want: open + `<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>  <mechanism>SCRAM-SHA-1</mechanism>  <mechanism>PLAIN</mechanism> </mechanisms>` + end,
		},
		{
			name: "channel binding, sm, compression removed; others kept",
			in: open +
				`<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'><channel-binding type='tls-server-end-point'/></sasl-channel-binding>` +
				`<sm xmlns='urn:xmpp:sm:2'/><sm xmlns='urn:xmpp:sm:3'><optional/></sm>` +
				`<compression xmlns='http://jabber.org/features/compress'><method>zlib</method></compression>` +
				`<ver xmlns='urn:xmpp:features:rosterver'/><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v='/>` + end,
			want: open + `<ver xmlns='urn:xmpp:features:rosterver'/><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v='/>` + end,
		},
		{
			name: "KeepSM: sm kept; starttls, -PLUS, channel binding, compression removed",
			in: open +
				`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>` +
				`<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1-PLUS</mechanism><mechanism>SCRAM-SHA-1</mechanism></mechanisms>` +
				`<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'><channel-binding type='tls-server-end-point'/></sasl-channel-binding>` +
				`<sm xmlns='urn:xmpp:sm:2'/><sm xmlns='urn:xmpp:sm:3'><optional/></sm>` +
				`<compression xmlns='http://jabber.org/features/compress'><method>zlib</method></compression>` + end,
			want: open +
				`<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism></mechanisms>` +
				`<sm xmlns='urn:xmpp:sm:2'/><sm xmlns='urn:xmpp:sm:3'><optional/></sm>` + end,
			starttls: true,
			keepSM:   true,
		},
		{
			name:   "KeepSM, nothing to remove: same bytes",
			in:     open + `<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><m:sm xmlns:m='urn:xmpp:sm:3'/>` + end,
			want:   open + `<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><m:sm xmlns:m='urn:xmpp:sm:3'/>` + end,
			keepSM: true,
		},
		{
			name:     "matched by namespace, not prefix",
			in:       `<s:features xmlns:s='http://etherx.jabber.org/streams' xmlns:t='urn:ietf:params:xml:ns:xmpp-tls' xmlns:m='urn:xmpp:sm:3'><t:starttls/><m:sm/><x:mechanisms xmlns:x='urn:ietf:params:xml:ns:xmpp-sasl'><x:mechanism>X-PLUS</x:mechanism><x:mechanism>PLAIN</x:mechanism></x:mechanisms></s:features>`,
			want:     `<s:features xmlns:s='http://etherx.jabber.org/streams' xmlns:t='urn:ietf:params:xml:ns:xmpp-tls' xmlns:m='urn:xmpp:sm:3'><x:mechanisms xmlns:x='urn:ietf:params:xml:ns:xmpp-sasl'><x:mechanism>PLAIN</x:mechanism></x:mechanisms></s:features>`,
			starttls: true,
		},
		{
			name: "lookalikes in other namespaces kept",
			in:   open + `<starttls xmlns='urn:example'/><mechanisms xmlns='urn:example'><mechanism>A-PLUS</mechanism></mechanisms><compression xmlns='urn:xmpp:compress'/>` + end,
			want: open + `<starttls xmlns='urn:example'/><mechanisms xmlns='urn:example'><mechanism>A-PLUS</mechanism></mechanisms><compression xmlns='urn:xmpp:compress'/>` + end,
		},
		{
			name: "entities decoded for matching, kept as sent",
			in:   open + `<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1&#45;PLUS</mechanism><mechanism>A&amp;B</mechanism></mechanisms>` + end,
			want: open + `<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>A&amp;B</mechanism></mechanisms>` + end,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, starttls, err := filterFeatures([]byte(tc.in), tc.keepSM)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			if starttls != tc.starttls {
				t.Errorf("starttls = %v, want %v", starttls, tc.starttls)
			}
		})
	}
}

func TestFilterFeaturesMalformed(t *testing.T) {
	t.Parallel()
	if _, _, err := filterFeatures([]byte(`<stream:features xmlns:stream='http://etherx.jabber.org/streams'><a b=></a></stream:features>`), false); err == nil {
		t.Error("no error for a syntax error")
	}
}
