// A small Strophe.js client for boshd's browser tests, driven by run.mjs
// through window.chat. Over BOSH or, given a ws:// or wss:// service URL,
// over XMPP over WebSocket (Strophe picks the transport from the URL). Every method returns a promise or a plain value
// that page.evaluate can carry back to Node.
(function () {
    'use strict';
    // The UMD build of Strophe.js 5 defines window.Strophe and the
    // builders $msg, $pres and $iq as globals.
    const { Strophe, $msg, $pres, $iq } = window;
    const Status = Strophe.Status;

    // The last few hundred lines of BOSH traffic, for failure reports.
    const traffic = [];
    function note(line) {
        traffic.push(new Date().toISOString().slice(11, 23) + ' ' + line);
        if (traffic.length > 300) {
            traffic.shift();
        }
    }

    const statusNames = Object.fromEntries(Object.entries(Status).map(([k, v]) => [v, k]));

    const chat = {
        conn: null,
        received: [],
        statuses: [],
        traffic,

        // create makes a connection with the message handler in place, so
        // that nothing arriving right after login or restore is missed.
        create(opts) {
            const conn = new Strophe.Connection(opts.service || '/http-bind', { keepalive: !!opts.keepalive });
            conn.rawInput = (data) => note('IN  ' + data.slice(0, 1500));
            conn.rawOutput = (data) => note('OUT ' + data.slice(0, 1500));
            conn.addHandler(onMessage, null, 'message');
            chat.conn = conn;
            return conn;
        },

        // login connects and authenticates jid, sends initial presence and
        // resolves with the bound JID and the BOSH sid.
        login(opts) {
            const conn = chat.create(opts);
            return new Promise((resolve, reject) => {
                conn.connect(opts.jid, opts.password, (status, condition) => {
                    chat.statuses.push(statusNames[status] + (condition ? ':' + condition : ''));
                    if (status === Status.CONNECTED) {
                        conn.send($pres());
                        conn.flush();
                        resolve({ jid: conn.jid, sid: conn._proto.sid, transport: conn._proto instanceof Strophe.Websocket ? 'websocket' : 'bosh' });
                    } else if ([Status.CONNFAIL, Status.AUTHFAIL, Status.DISCONNECTED, Status.ERROR].includes(status)) {
                        reject(new Error('login failed: ' + statusNames[status] + ' ' + (condition || '')));
                    }
                }, opts.wait || 60, 1);
            });
        },

        // restore continues the session cached in sessionStorage by a
        // previous page (keepalive) and resolves once Strophe is attached.
        restore(opts) {
            const conn = chat.create(Object.assign({}, opts, { keepalive: true }));
            return new Promise((resolve, reject) => {
                try {
                    conn.restore(opts.jid, (status, condition) => {
                        chat.statuses.push(statusNames[status] + (condition ? ':' + condition : ''));
                        if (status === Status.ATTACHED) {
                            resolve({ jid: conn.jid, sid: conn._proto.sid, rid: conn._proto.rid });
                        } else if ([Status.CONNFAIL, Status.AUTHFAIL, Status.DISCONNECTED, Status.ERROR, Status.ATTACHFAIL].includes(status)) {
                            reject(new Error('restore failed: ' + statusNames[status] + ' ' + (condition || '')));
                        }
                    }, opts.wait || 60, 1);
                } catch (e) {
                    reject(e);
                }
            });
        },

        // attach takes over a session boshd pre-bound ({jid, sid, rid} as
        // /prebind answers, rid a string) and resolves once Strophe is
        // attached.
        attach(opts) {
            const conn = chat.create(opts);
            return new Promise((resolve, reject) => {
                conn.attach(opts.jid, opts.sid, opts.rid, (status, condition) => {
                    chat.statuses.push(statusNames[status] + (condition ? ':' + condition : ''));
                    if (status === Status.ATTACHED) {
                        resolve({ jid: conn.jid, sid: conn._proto.sid, rid: conn._proto.rid });
                    } else if ([Status.CONNFAIL, Status.AUTHFAIL, Status.DISCONNECTED, Status.ERROR, Status.ATTACHFAIL].includes(status)) {
                        reject(new Error('attach failed: ' + statusNames[status] + ' ' + (condition || '')));
                    }
                }, opts.wait || 60, 1);
            });
        },

        // roster resolves with the bare JIDs of the user's roster.
        roster() {
            return new Promise((resolve, reject) => {
                const iq = $iq({ type: 'get' }).c('query', { xmlns: Strophe.NS.ROSTER });
                chat.conn.sendIQ(iq, (res) => resolve([...res.getElementsByTagName('item')].map((i) => i.getAttribute('jid'))),
                    (e) => reject(new Error('roster failed: ' + (e ? e.outerHTML : 'timeout'))), 20000);
                chat.conn.flush();
            });
        },

        // cachedSession returns what Strophe's keepalive stored.
        cachedSession() {
            return JSON.parse(sessionStorage.getItem('strophe-bosh-session'));
        },

        // send sends one chat message and flushes Strophe's queue (which
        // otherwise waits for a 100 ms idle timer).
        send(to, body, id) {
            chat.conn.send($msg({ to, type: 'chat', id: id || body }).c('body').t(body));
            chat.conn.flush();
        },

        // sendMany sends prefix-0 ... prefix-(n-1), yielding to the event
        // loop between messages so that responses interleave with sends,
        // then prefix-end.
        async sendMany(to, prefix, n) {
            for (let i = 0; i < n; i++) {
                chat.send(to, prefix + '-' + i);
                await new Promise((r) => setTimeout(r, 0));
            }
            chat.send(to, prefix + '-end');
        },

        // ping resolves when the server answers an XEP-0199 ping: every
        // stanza sent before it has been processed by the server.
        ping() {
            return new Promise((resolve, reject) => {
                const iq = $iq({ type: 'get', to: Strophe.getDomainFromJid(chat.conn.jid) }).c('ping', { xmlns: 'urn:xmpp:ping' });
                chat.conn.sendIQ(iq, () => resolve(true), (e) => reject(new Error('ping failed: ' + (e ? e.outerHTML : 'timeout'))), 20000);
                chat.conn.flush();
            });
        },

        // closeStream ends a WebSocket session the way a server-side
        // close looks to Strophe: it writes <close/> on the socket itself,
        // bypassing Strophe's disconnect (which closes the socket at
        // once), so that Strophe handles the server's <close/> and the
        // server's closing of the socket. It resolves with the statuses
        // once Strophe is disconnected.
        closeStream() {
            return new Promise((resolve) => {
                const conn = chat.conn;
                conn.connect_callback = (status, condition) => {
                    chat.statuses.push(statusNames[status] + (condition ? ':' + condition : ''));
                    if (status === Status.DISCONNECTED) {
                        resolve(chat.statuses);
                    }
                };
                conn._proto.socket.send('<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"/>');
            });
        },

        // logout ends the session and resolves once Strophe is
        // disconnected.
        logout() {
            return new Promise((resolve) => {
                const conn = chat.conn;
                conn.addHandler(() => true, null, 'presence');
                const prev = conn.connect_callback;
                conn.connect_callback = (status, condition) => {
                    chat.statuses.push(statusNames[status] + (condition ? ':' + condition : ''));
                    if (status === Status.DISCONNECTED) {
                        resolve(true);
                    }
                    if (prev) {
                        prev(status, condition);
                    }
                };
                conn.disconnect('test done');
            });
        },
    };

    function onMessage(stanza) {
        const body = stanza.getElementsByTagName('body')[0];
        const m = {
            from: stanza.getAttribute('from'),
            type: stanza.getAttribute('type'),
            id: stanza.getAttribute('id'),
            body: body ? body.textContent : null,
        };
        chat.received.push(m);
        if (typeof window.reportMessage === 'function') {
            window.reportMessage(m);
        }
        return true;
    }

    window.chat = chat;
})();
