// Entry point of the StanzaJS bundle that run.mjs builds with esbuild for
// stanza.html: StanzaJS ships no browser build of its own.
import * as XMPP from 'stanza';

window.XMPP = XMPP;
